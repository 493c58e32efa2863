package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer healthy.Close()
	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unhealthy.Close()

	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "help", args: []string{"-h"}, wantCode: 0, wantStdout: "-cache-ttl"},
		{name: "bad flag value", args: []string{"-cache-ttl", "forever"}, wantCode: 2, wantStderr: "-cache-ttl"},
		{name: "bad environment value", env: map[string]string{"LOG_LEVEL": "loud"}, wantCode: 2, wantStderr: "LOG_LEVEL"},
		{name: "probe healthy", args: []string{"-probe", healthy.URL + "/healthz"}, wantCode: 0},
		{name: "probe unhealthy", args: []string{"-probe", unhealthy.URL + "/healthz"}, wantCode: 1, wantStderr: "503"},
		{name: "server cannot listen", args: []string{"-listen", healthy.Listener.Addr().String()},
			wantCode: 1, wantStderr: `"level":"ERROR"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(tt.args, func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}
