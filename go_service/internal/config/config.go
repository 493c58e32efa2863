// Package config reads the service's settings from command-line flags,
// falling back to environment variables and then to defaults. Flags win so
// a one-off run can override the container's environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"cacheplatform/go_service/internal/redact"
)

// Config is the validated service configuration.
type Config struct {
	Listen            string        // host:port to serve on
	CacheTTL          time.Duration // how long a cached value is served (the shared tier's TTL with redis)
	CacheL1TTL        time.Duration // how long the in-process tier keeps a value; at most CacheTTL
	CacheMaxEntries   int           // cache size bound
	CacheBackend      string        // "memory" (in-process only) or "redis" (in-process in front of Redis)
	RedisURL          string        // redis://[user@]host:port/db, required with the redis backend
	RedisPasswordFile string        // file holding the password of RedisURL's user; "" for none
	RedisTimeout      time.Duration // bound on each Redis command
	JanitorInterval   time.Duration // how often expired entries are swept
	LogLevel          slog.Level
	ShutdownTimeout   time.Duration // how long in-flight requests may drain
}

// envFallback pairs a flag with the environment variable read when the
// flag is not given.
type envFallback struct{ flag, env string }

func envFallbacks() []envFallback {
	return []envFallback{
		{"listen", "LISTEN_ADDR"},
		{"cache-ttl", "CACHE_TTL"},
		{"cache-l1-ttl", "CACHE_L1_TTL"},
		{"cache-max-entries", "CACHE_MAX_ENTRIES"},
		{"cache-backend", "CACHE_BACKEND"},
		{"redis-url", "REDIS_URL"},
		{"redis-password-file", "REDIS_PASSWORD_FILE"},
		{"redis-timeout", "REDIS_TIMEOUT"},
		{"janitor-interval", "CACHE_JANITOR_INTERVAL"},
		{"log-level", "LOG_LEVEL"},
		{"shutdown-timeout", "SHUTDOWN_TIMEOUT"},
	}
}

func newFlagSet(cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("go_service", flag.ContinueOnError)
	// Parse reports errors to its caller instead of printing them.
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Listen, "listen", ":8080", "`address` to serve on (env LISTEN_ADDR)")
	fs.DurationVar(&cfg.CacheTTL, "cache-ttl", 10*time.Second, "how long a cached value is served (env CACHE_TTL)")
	fs.DurationVar(&cfg.CacheL1TTL, "cache-l1-ttl", 0, "how long the in-process tier keeps a value, at most -cache-ttl; 0 means -cache-ttl (env CACHE_L1_TTL)")
	fs.StringVar(&cfg.CacheBackend, "cache-backend", BackendMemory, "`backend`: memory (in-process only) or redis (in-process in front of Redis, shared by every replica) (env CACHE_BACKEND)")
	fs.StringVar(&cfg.RedisURL, "redis-url", "", "redis://[user@]host:port/db of the shared tier, with -cache-backend=redis (env REDIS_URL)")
	fs.StringVar(&cfg.RedisPasswordFile, "redis-password-file", "", "`file` holding the password of -redis-url's user (a Redis ACL user); read at start (env REDIS_PASSWORD_FILE)")
	fs.DurationVar(&cfg.RedisTimeout, "redis-timeout", 50*time.Millisecond, "bound on each Redis command; past it the value is computed locally (env REDIS_TIMEOUT)")
	fs.IntVar(&cfg.CacheMaxEntries, "cache-max-entries", 10000, "cache size bound (env CACHE_MAX_ENTRIES)")
	fs.DurationVar(&cfg.JanitorInterval, "janitor-interval", time.Second, "how often expired cache entries are swept (env CACHE_JANITOR_INTERVAL)")
	cfg.LogLevel = slog.LevelInfo
	fs.Func("log-level", "`level`: debug, info, warn or error (env LOG_LEVEL; default info)", func(s string) error {
		level, err := parseLevel(s)
		cfg.LogLevel = level
		return err
	})
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may drain on SIGTERM (env SHUTDOWN_TIMEOUT)")
	return fs
}

// The cache backends (-cache-backend).
const (
	BackendMemory = "memory"
	BackendRedis  = "redis"
)

// Parse builds the configuration from args (without the program name) and
// the environment read through getenv. It returns flag.ErrHelp for -h.
func Parse(args []string, getenv func(string) string) (Config, error) {
	var cfg Config
	fs := newFlagSet(&cfg)
	for _, f := range envFallbacks() {
		value := getenv(f.env)
		if value == "" {
			continue
		}
		if err := fs.Set(f.flag, value); err != nil {
			return Config{}, fmt.Errorf("invalid value %q for %s: %w", value, f.env, err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.CacheL1TTL == 0 {
		cfg.CacheL1TTL = cfg.CacheTTL
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Usage writes the flag documentation to w.
func Usage(w io.Writer) {
	fs := newFlagSet(&Config{})
	fs.SetOutput(w)
	fmt.Fprintln(w, "Usage: go_service [flags]")
	fs.PrintDefaults()
}

func (c Config) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("-listen %q: %w", c.Listen, err))
	}
	for _, d := range []struct {
		flag  string
		value time.Duration
	}{
		{"-cache-ttl", c.CacheTTL},
		{"-cache-l1-ttl", c.CacheL1TTL},
		{"-redis-timeout", c.RedisTimeout},
		{"-janitor-interval", c.JanitorInterval},
		{"-shutdown-timeout", c.ShutdownTimeout},
	} {
		if d.value <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.flag, d.value))
		}
	}
	if c.CacheL1TTL > c.CacheTTL {
		// A replica must not keep serving a value the others already replaced.
		errs = append(errs, fmt.Errorf("-cache-l1-ttl %s must not exceed -cache-ttl %s", c.CacheL1TTL, c.CacheTTL))
	}
	switch c.CacheBackend {
	case BackendMemory:
	case BackendRedis:
		// Printed without its userinfo: the URL may hold a password.
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			errs = append(errs, fmt.Errorf("-redis-url %q: want redis://[user@]host:port/db with -cache-backend=redis", redact.URL(c.RedisURL)))
		}
	default:
		errs = append(errs, fmt.Errorf("-cache-backend %q: want memory or redis", c.CacheBackend))
	}
	if c.CacheMaxEntries <= 0 {
		errs = append(errs, fmt.Errorf("-cache-max-entries must be positive, got %d", c.CacheMaxEntries))
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return slog.LevelInfo, errors.New("want debug, info, warn or error")
	}
}
