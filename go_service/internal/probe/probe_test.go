package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
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
			if err := Check(t.Context(), srv.URL); (err != nil) != tt.wantErr {
				t.Errorf("Check = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestCheckFailsWhenNothingListens(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if err := Check(t.Context(), url); err == nil {
		t.Fatal("Check succeeded against a closed server")
	}
}

func TestCheckGivesUpOnAHungServer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := Check(ctx, srv.URL); err == nil {
		t.Fatal("Check succeeded against a server that never answers")
	}
}

func TestCheckRejectsBadURL(t *testing.T) {
	if err := Check(t.Context(), "http://127.0.0.1 bad/"); err == nil {
		t.Fatal("Check accepted a malformed URL")
	}
}
