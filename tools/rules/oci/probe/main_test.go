package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		status  int
		wantErr bool
	}{
		{http.StatusOK, false},
		{http.StatusNoContent, false},
		{http.StatusMovedPermanently, true}, // redirect without Location: not followed
		{http.StatusNotFound, true},
		{http.StatusServiceUnavailable, true},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			if err := check(t.Context(), srv.URL); (err != nil) != tt.wantErr {
				t.Errorf("check = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestCheckFailsWhenNothingListens(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if err := check(t.Context(), url); err == nil {
		t.Fatal("check succeeded against a closed server")
	}
}

func TestCheckGivesUpWhenItsContextEnds(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := check(ctx, srv.URL); err == nil {
		t.Fatal("check succeeded against a server that never answers")
	}
}

func TestRun(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer healthy.Close()
	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unhealthy.Close()

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{name: "healthy", args: []string{healthy.URL + "/healthz"}, wantCode: 0},
		{name: "unhealthy", args: []string{unhealthy.URL + "/healthz"}, wantCode: 1, wantStderr: "503 Service Unavailable"},
		{name: "no URL", wantCode: 2, wantStderr: "usage: probe URL"},
		{name: "two URLs", args: []string{healthy.URL, healthy.URL}, wantCode: 2, wantStderr: "usage: probe URL"},
		{name: "relative URL", args: []string{"/healthz"}, wantCode: 2, wantStderr: "absolute http or https URL"},
		{name: "other scheme", args: []string{"ftp://127.0.0.1/healthz"}, wantCode: 2, wantStderr: "absolute http or https URL"},
		{name: "malformed URL", args: []string{"http://127.0.0.1 bad/"}, wantCode: 2, wantStderr: "absolute http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			if code := run(tt.args, &stderr); code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

// A service that accepts the request and never answers fails its check after Timeout, not later.
func TestRunGivesUpAfterTimeout(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer hung.Close()
	defer close(release)
	var stderr strings.Builder
	start := time.Now()
	code := run([]string{hung.URL}, &stderr)
	took := time.Since(start)
	if code != 1 || !strings.Contains(stderr.String(), "deadline exceeded") {
		t.Errorf("exit code %d, stderr %q; want 1 and the deadline as the reason", code, stderr.String())
	}
	// The server never answers, so returning at all is the deadline's doing (stderr names it).
	// Only the real clock can say it was Timeout's: not before it, and nowhere near 10 of them.
	if took < Timeout || took > 10*Timeout {
		t.Errorf("gave up after %s, want after Timeout (%s)", took, Timeout)
	}
}
