package config

import (
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func defaults() Config {
	return Config{
		Listen:          ":8080",
		CacheTTL:        10 * time.Second,
		CacheL1TTL:      10 * time.Second,
		CacheMaxEntries: 10000,
		CacheBackend:    BackendMemory,
		RedisTimeout:    50 * time.Millisecond,
		JanitorInterval: time.Second,
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: 15 * time.Second,
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*Config)
	}{
		{name: "defaults"},
		{
			name: "flags",
			args: []string{"-listen", "127.0.0.1:9000", "-cache-ttl", "1m", "-cache-max-entries", "5",
				"-janitor-interval", "250ms", "-log-level", "debug", "-shutdown-timeout", "2s"},
			want: func(c *Config) {
				c.Listen, c.CacheTTL, c.CacheL1TTL, c.CacheMaxEntries = "127.0.0.1:9000", time.Minute, time.Minute, 5
				c.JanitorInterval, c.LogLevel, c.ShutdownTimeout = 250*time.Millisecond, slog.LevelDebug, 2*time.Second
			},
		},
		{
			name: "environment",
			env: map[string]string{"LISTEN_ADDR": ":9090", "CACHE_TTL": "30s", "CACHE_MAX_ENTRIES": "7",
				"CACHE_JANITOR_INTERVAL": "5s", "LOG_LEVEL": "WARN", "SHUTDOWN_TIMEOUT": "1s"},
			want: func(c *Config) {
				c.Listen, c.CacheTTL, c.CacheL1TTL, c.CacheMaxEntries = ":9090", 30*time.Second, 30*time.Second, 7
				c.JanitorInterval, c.LogLevel, c.ShutdownTimeout = 5*time.Second, slog.LevelWarn, time.Second
			},
		},
		{
			name: "flag beats environment",
			args: []string{"-cache-ttl=3s", "-log-level=error"},
			env:  map[string]string{"CACHE_TTL": "30s", "LOG_LEVEL": "debug"},
			want: func(c *Config) { c.CacheTTL, c.CacheL1TTL, c.LogLevel = 3*time.Second, 3*time.Second, slog.LevelError },
		},
		{
			name: "redis backend from the environment, shorter L1 TTL",
			env: map[string]string{"CACHE_BACKEND": "redis", "REDIS_URL": "redis://redis:6379/0",
				"REDIS_TIMEOUT": "20ms", "CACHE_L1_TTL": "2s"},
			want: func(c *Config) {
				c.CacheBackend, c.RedisURL, c.RedisTimeout, c.CacheL1TTL = BackendRedis, "redis://redis:6379/0", 20*time.Millisecond, 2*time.Second
			},
		},
		{
			name: "redis ACL user, password from a file",
			env: map[string]string{"CACHE_BACKEND": "redis", "REDIS_URL": "redis://go-service@redis:6379/0",
				"REDIS_PASSWORD_FILE": "/run/secrets/redis-password"},
			want: func(c *Config) {
				c.CacheBackend, c.RedisURL, c.RedisPasswordFile = BackendRedis, "redis://go-service@redis:6379/0", "/run/secrets/redis-password"
			},
		},
		{
			name: "empty environment variable means unset",
			env:  map[string]string{"CACHE_TTL": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := defaults()
			if tt.want != nil {
				tt.want(&want)
			}
			got, err := Parse(tt.args, mapEnv(tt.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != want {
				t.Errorf("Parse = %+v\nwant    %+v", got, want)
			}
		})
	}
}

func TestParseRejectsBadValues(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{name: "unparsable duration flag", args: []string{"-cache-ttl", "soon"}, wantErr: "-cache-ttl"},
		{name: "unparsable duration env", env: map[string]string{"CACHE_TTL": "soon"}, wantErr: "CACHE_TTL"},
		{name: "unparsable int env", env: map[string]string{"CACHE_MAX_ENTRIES": "many"}, wantErr: "CACHE_MAX_ENTRIES"},
		{name: "zero ttl", args: []string{"-cache-ttl", "0s"}, wantErr: "-cache-ttl must be positive"},
		{name: "negative janitor interval", args: []string{"-janitor-interval", "-1s"}, wantErr: "-janitor-interval must be positive"},
		{name: "zero shutdown timeout", env: map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, wantErr: "-shutdown-timeout must be positive"},
		{name: "zero max entries", args: []string{"-cache-max-entries", "0"}, wantErr: "-cache-max-entries must be positive"},
		{name: "unknown log level", args: []string{"-log-level", "verbose"}, wantErr: "want debug, info, warn or error"},
		{name: "unknown log level env", env: map[string]string{"LOG_LEVEL": "trace"}, wantErr: "LOG_LEVEL"},
		{name: "listen without port", args: []string{"-listen", "localhost"}, wantErr: "-listen"},
		{name: "L1 TTL above the shared TTL", args: []string{"-cache-ttl=5s", "-cache-l1-ttl=6s"}, wantErr: "-cache-l1-ttl 6s must not exceed -cache-ttl 5s"},
		{name: "unknown backend", env: map[string]string{"CACHE_BACKEND": "memcached"}, wantErr: `-cache-backend "memcached"`},
		{name: "redis without url", args: []string{"-cache-backend=redis"}, wantErr: "-redis-url"},
		{name: "redis url with other scheme", args: []string{"-cache-backend=redis", "-redis-url=http://redis:6379"}, wantErr: "-redis-url"},
		{name: "zero redis timeout", args: []string{"-redis-timeout=0s"}, wantErr: "-redis-timeout must be positive"},
		{name: "unknown flag", args: []string{"-verbose"}, wantErr: "flag provided but not defined"},
		{name: "positional argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.args, mapEnv(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// An invalid REDIS_URL is named in the error without its password: the message reaches terminals
// and logs. net/url's own error would quote the whole URL.
func TestInvalidRedisURLIsReportedWithoutItsPassword(t *testing.T) {
	for _, raw := range []string{
		"http://go-service:s3cret@redis:6379/0", // wrong scheme
		"redis://go-service:s3cret@redis:x/0",   // bad port: url.Parse fails
		"redis://go-service:s3 cret@redis/0",    // bad userinfo
	} {
		_, err := Parse([]string{"-cache-backend=redis", "-redis-url=" + raw}, mapEnv(nil))
		if err == nil || !strings.Contains(err.Error(), "-redis-url") {
			t.Fatalf("Parse(%q) error = %v, want one naming -redis-url", raw, err)
		}
		if strings.Contains(err.Error(), "s3") || !strings.Contains(err.Error(), "redis") {
			t.Errorf("Parse(%q) error = %q: want the URL without its userinfo", raw, err)
		}
	}
}

func TestParseReportsEveryInvalidSetting(t *testing.T) {
	_, err := Parse([]string{"-cache-ttl=0s", "-cache-max-entries=-1"}, mapEnv(nil))
	for _, want := range []string{"-cache-ttl", "-cache-max-entries"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse error = %v, want it to mention %s", err, want)
		}
	}
}

func TestHelp(t *testing.T) {
	if _, err := Parse([]string{"-h"}, mapEnv(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) error = %v, want flag.ErrHelp", err)
	}
	var usage strings.Builder
	Usage(&usage)
	for _, env := range envFallbacks() {
		if !strings.Contains(usage.String(), "-"+env.flag) || !strings.Contains(usage.String(), env.env) {
			t.Errorf("usage does not document -%s and %s:\n%s", env.flag, env.env, usage.String())
		}
	}
}

func mapEnv(env map[string]string) func(string) string {
	return func(key string) string { return env[key] }
}
