package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestGet(t *testing.T) {
	for _, tc := range []struct {
		status  int
		wantErr bool
	}{
		{http.StatusOK, false},
		{http.StatusNoContent, false},
		{http.StatusServiceUnavailable, true},
		{http.StatusNotFound, true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(tc.status)
		}))
		if err := get(srv.URL); (err != nil) != tc.wantErr {
			t.Errorf("status %d: err = %v, want error %v", tc.status, err, tc.wantErr)
		}
		srv.Close()
	}
	if err := get("http://127.0.0.1:1/"); err == nil {
		t.Error("want an error when nothing listens")
	}
}
