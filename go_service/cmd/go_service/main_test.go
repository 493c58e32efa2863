package main

import (
	"net"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

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
		// The image's healthcheck is tools/rules/oci/probe: the service has no probe mode.
		{name: "no probe mode", args: []string{"-probe", "http://127.0.0.1:8080/healthz"}, wantCode: 2, wantStderr: "-probe"},
		{name: "server cannot listen", args: []string{"-listen", taken.Addr().String()},
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
