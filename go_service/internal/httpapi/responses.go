package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

const (
	contentTypeText = "text/plain; charset=utf-8"
	contentTypeJSON = "application/json"
)

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", contentTypeText)
	w.WriteHeader(status)
	// A failed write means the client went away; there is no one to tell.
	_, _ = io.WriteString(w, body)
}

// writeJSONField writes {"<field>": "<value>"}.
func writeJSONField(w http.ResponseWriter, field, value string) {
	// Marshalling a map of strings cannot fail.
	body, _ := json.Marshal(map[string]string{field: value})
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

func textHandler(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, status, body)
	})
}

func readinessHandler(ready func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if ready() {
			writeText(w, http.StatusOK, "ready\n")
			return
		}
		writeText(w, http.StatusServiceUnavailable, "not ready\n")
	})
}

func banner(routes []route) string {
	var b strings.Builder
	b.WriteString("go_service: the cache platform's Go service\n\nEndpoints (GET or HEAD):\n")
	for _, r := range routes {
		fmt.Fprintf(&b, "  %-13s %s\n", r.path, r.summary)
	}
	return b.String()
}
