package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/munnerz/goautoneg"
)

const (
	contentTypeText = "text/plain; charset=utf-8"
	contentTypeJSON = "application/json"
)

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", contentTypeText)
	w.Header().Set("X-Content-Type-Options", "nosniff")
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

// offers are the media types of the negotiated routes, in the server's order
// of preference (api/openapi.json, content-negotiation).
var offers = [...]string{"text/plain", "application/json"}

// prefersJSON reports whether a request's Accept field values choose JSON
// over text (api/openapi.json, content-negotiation; RFC 9110 section
// 12.5.1). goautoneg parses the ranges; each offer takes the weight of the
// most specific range matching it (type/subtype over type/* over */*, the
// higher q among equals); ranges with parameters other than q, or with a q
// outside 0..1, match nothing. The highest weight above 0 wins, ties go to
// the first offer, and with nothing acceptable the field is disregarded:
// text. py_service applies the same rule with werkzeug's parser.
func prefersJSON(accept []string) bool {
	ranges := goautoneg.ParseAccept(strings.Join(accept, ","))
	best, bestWeight := 0, 0.0
	for i, offer := range offers {
		if w := weight(ranges, offer); w > bestWeight {
			best, bestWeight = i, w
		}
	}
	return bestWeight > 0 && offers[best] == contentTypeJSON
}

// weight is the q of the most specific range that matches mediaType
// ("type/subtype"), 0 when none does.
func weight(ranges []goautoneg.Accept, mediaType string) float64 {
	typ, subtype, _ := strings.Cut(mediaType, "/")
	specificity, q := -1, 0.0
	for _, r := range ranges {
		if len(r.Params) > 0 || r.Q < 0 || r.Q > 1 {
			continue
		}
		var s int
		switch {
		case strings.EqualFold(r.Type, typ) && strings.EqualFold(r.SubType, subtype):
			s = 2
		case strings.EqualFold(r.Type, typ) && r.SubType == "*":
			s = 1
		case r.Type == "*" && r.SubType == "*":
			s = 0
		default:
			continue
		}
		if s > specificity || (s == specificity && r.Q > q) {
			specificity, q = s, r.Q
		}
	}
	return q
}
