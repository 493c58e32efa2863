package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cacheplatform/go_service/internal/cache"
	"cacheplatform/go_service/internal/clocktest"
	"cacheplatform/go_service/internal/metrics"
	"cacheplatform/go_service/internal/sharedcache"
)

const testTTL = 10 * time.Second

// testService is the handler wired to a fake clock, a fresh registry and a
// log buffer, as the server wires it to real ones.
type testService struct {
	handler  http.Handler
	clock    *clocktest.Clock
	ready    atomic.Bool
	registry *prometheus.Registry
	logs     *bytes.Buffer
}

func newTestService(t testing.TB) *testService {
	t.Helper()
	return newReplica(t, clocktest.New(time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)), nil)
}

// newReplica is one replica of the service on clock, in front of shared
// (nil: in-process cache only).
func newReplica(t testing.TB, clock *clocktest.Clock, shared *sharedcache.Tier) *testService {
	t.Helper()
	s := &testService{
		clock:    clock,
		registry: prometheus.NewRegistry(),
		logs:     &bytes.Buffer{},
	}
	s.ready.Store(true)
	c, err := cache.New[string, string](cache.Options{
		MaxEntries: 100, TTL: testTTL, JanitorInterval: time.Second, Now: s.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := metrics.RegisterCache(s.registry, c.Stats); err != nil {
		t.Fatal(err)
	}
	httpMetrics, err := metrics.NewHTTP(s.registry)
	if err != nil {
		t.Fatal(err)
	}
	fills, err := metrics.NewCacheFills(s.registry, CachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	s.handler = New(Config{
		Cache:    c,
		Shared:   shared,
		Fills:    fills,
		Now:      s.clock.Now,
		Ready:    s.ready.Load,
		Metrics:  httpMetrics,
		Gatherer: s.registry,
		Logger:   slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	return s
}

func (s *testService) do(method, path, accept string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/", nil)
	req.URL.Path = path // set directly so any string is a usable path
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec
}

// seriesCount is the number of time series the registry exposes.
func (s *testService) seriesCount(t testing.TB) int {
	t.Helper()
	families, err := s.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		n += len(f.GetMetric())
	}
	return n
}

// metricValue returns the value of the counter or gauge series of family
// name whose labels include want.
func (s *testService) metricValue(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	families, err := s.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		name            string
		method, path    string
		accept          string
		notReady        bool
		wantStatus      int
		wantContentType string
		wantBody        string // exact, unless empty
		wantBodyHas     []string
		wantHeaders     map[string]string
	}{
		{name: "banner", method: "GET", path: "/", wantStatus: 200, wantContentType: contentTypeText,
			wantBodyHas: []string{"go_service", "/static-text", "/time", "/metrics", "/healthz", "/readyz"}},
		{name: "banner head", method: "HEAD", path: "/", wantStatus: 200, wantContentType: contentTypeText},
		{name: "static text", method: "GET", path: "/static-text", wantStatus: 200, wantContentType: contentTypeText,
			wantBody: staticText + "\n", wantHeaders: map[string]string{"X-Cache": "MISS", "Age": "0", "Vary": "Accept"}},
		{name: "static text json", method: "GET", path: "/static-text", accept: "application/json", wantStatus: 200,
			wantContentType: contentTypeJSON, wantBody: `{"text":"` + staticText + `"}` + "\n"},
		{name: "static text head", method: "HEAD", path: "/static-text", wantStatus: 200, wantContentType: contentTypeText,
			wantHeaders: map[string]string{"X-Cache": "MISS"}},
		{name: "time", method: "GET", path: "/time", wantStatus: 200, wantContentType: contentTypeText,
			wantBody: "2025-06-01T12:00:00.123456789Z\n", wantHeaders: map[string]string{"X-Cache": "MISS", "Age": "0"}},
		{name: "time json", method: "GET", path: "/time", accept: "text/html, application/json;q=0.9", wantStatus: 200,
			wantContentType: contentTypeJSON, wantBody: `{"time":"2025-06-01T12:00:00.123456789Z"}` + "\n"},
		{name: "time json refused", method: "GET", path: "/time", accept: "application/json;q=0", wantStatus: 200,
			wantContentType: contentTypeText},
		{name: "healthz", method: "GET", path: "/healthz", wantStatus: 200, wantContentType: contentTypeText, wantBody: "ok\n"},
		{name: "healthz head", method: "HEAD", path: "/healthz", wantStatus: 200, wantContentType: contentTypeText},
		{name: "readyz ready", method: "GET", path: "/readyz", wantStatus: 200, wantContentType: contentTypeText, wantBody: "ready\n"},
		{name: "readyz draining", method: "GET", path: "/readyz", notReady: true, wantStatus: 503,
			wantContentType: contentTypeText, wantBody: "not ready\n"},
		{name: "healthz while draining", method: "GET", path: "/healthz", notReady: true, wantStatus: 200, wantBody: "ok\n"},
		{name: "metrics", method: "GET", path: "/metrics", wantStatus: 200,
			wantContentType: "text/plain; version=0.0.4; charset=utf-8", wantBodyHas: []string{"cache_entries 0"}},
		{name: "post to route", method: "POST", path: "/time", wantStatus: 405, wantContentType: contentTypeText,
			wantBody: "method not allowed\n", wantHeaders: map[string]string{"Allow": "GET, HEAD"}},
		{name: "delete banner", method: "DELETE", path: "/", wantStatus: 405, wantHeaders: map[string]string{"Allow": "GET, HEAD"}},
		{name: "options", method: "OPTIONS", path: "/healthz", wantStatus: 405, wantHeaders: map[string]string{"Allow": "GET, HEAD"}},
		{name: "made-up method", method: "BREW", path: "/metrics", wantStatus: 405, wantHeaders: map[string]string{"Allow": "GET, HEAD"}},
		{name: "unknown path", method: "GET", path: "/nope", wantStatus: 404, wantContentType: contentTypeText, wantBody: "not found\n"},
		{name: "unknown path other method", method: "POST", path: "/nope", wantStatus: 404, wantBody: "not found\n"},
		{name: "trailing slash", method: "GET", path: "/time/", wantStatus: 404},
		{name: "unclean path is not redirected", method: "GET", path: "//time", wantStatus: 404},
		{name: "dot segments", method: "GET", path: "/x/../time", wantStatus: 404},
		{name: "case matters", method: "GET", path: "/TIME", wantStatus: 404},
		{name: "below a route", method: "GET", path: "/healthz/deep", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestService(t)
			s.ready.Store(!tt.notReady)
			rec := s.do(tt.method, tt.path, tt.accept)

			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", rec.Code, tt.wantStatus, rec.Body.String())
			}
			if tt.wantContentType != "" && !contentTypeSatisfies(rec.Header().Get("Content-Type"), tt.wantContentType) {
				t.Errorf("Content-Type = %q, want %q", rec.Header().Get("Content-Type"), tt.wantContentType)
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.wantBody)
			}
			for _, part := range tt.wantBodyHas {
				if !strings.Contains(rec.Body.String(), part) {
					t.Errorf("body does not contain %q:\n%s", part, rec.Body.String())
				}
			}
			for name, want := range tt.wantHeaders {
				if got := rec.Header().Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// Each step is one GET /time after moving the fake clock on.
func TestTimeIsCachedForTTL(t *testing.T) {
	type step struct {
		advance     time.Duration
		accept      string
		wantXCache  string
		wantAge     string
		wantNewTime bool // a different timestamp than the previous step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"hit within ttl keeps the timestamp", []step{
			{wantXCache: "MISS", wantAge: "0", wantNewTime: true},
			{advance: 3500 * time.Millisecond, wantXCache: "HIT", wantAge: "3"},
			{advance: 6 * time.Second, wantXCache: "HIT", wantAge: "9"},
		}},
		{"json and text share one entry", []step{
			{wantXCache: "MISS", wantAge: "0", wantNewTime: true},
			{advance: time.Second, accept: "application/json", wantXCache: "HIT", wantAge: "1"},
		}},
		{"expiry loads a new time", []step{
			{wantXCache: "MISS", wantAge: "0", wantNewTime: true},
			{advance: testTTL, wantXCache: "MISS", wantAge: "0", wantNewTime: true},
			{advance: 2 * time.Second, accept: "application/json", wantXCache: "HIT", wantAge: "2"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestService(t)
			previous := ""
			for i, st := range tt.steps {
				s.clock.Advance(st.advance)
				rec := s.do("GET", "/time", st.accept)
				if got := rec.Header().Get("X-Cache"); got != st.wantXCache {
					t.Errorf("step %d: X-Cache = %q, want %q", i, got, st.wantXCache)
				}
				if got := rec.Header().Get("Age"); got != st.wantAge {
					t.Errorf("step %d: Age = %q, want %q", i, got, st.wantAge)
				}
				got := timeFromBody(t, rec)
				if changed := got != previous; changed != st.wantNewTime {
					t.Errorf("step %d: time %q after %q, want changed=%v", i, got, previous, st.wantNewTime)
				}
				previous = got
			}
		})
	}
}

func timeFromBody(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if rec.Header().Get("Content-Type") != contentTypeJSON {
		return strings.TrimSuffix(rec.Body.String(), "\n")
	}
	var body struct{ Time string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("decoding %q: %v", rec.Body.String(), err)
	}
	return body.Time
}

func TestAgeSeconds(t *testing.T) {
	stored := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		elapsed time.Duration
		want    int64
	}{
		{0, 0},
		{999 * time.Millisecond, 0},
		{time.Second, 1},
		{90 * time.Second, 90},
		{-time.Second, 0}, // a clock step backwards must not produce a negative Age
	}
	for _, tt := range tests {
		if got := ageSeconds(stored.Add(tt.elapsed), stored); got != tt.want {
			t.Errorf("ageSeconds(+%v) = %d, want %d", tt.elapsed, got, tt.want)
		}
	}
}

func TestCachedRouteAnswersUnavailableWhenRequestIsCancelled(t *testing.T) {
	s := newTestService(t)
	req := httptest.NewRequest("GET", "/time", nil)
	ctx, cancel := context.WithCancel(req.Context())
	cancel()
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req.WithContext(ctx))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", rec.Code)
	}
}

func TestMetricsCountRequestsAndCacheResults(t *testing.T) {
	s := newTestService(t)
	s.do("GET", "/time", "")
	s.do("GET", "/time", "")
	s.do("HEAD", "/time", "")
	s.do("POST", "/time", "")
	s.do("GET", "/nowhere", "")
	s.do("PURGE", "/nowhere", "")

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"http_requests_total", map[string]string{"handler": "/time", "method": "GET", "code": "200"}, 2},
		{"http_requests_total", map[string]string{"handler": "/time", "method": "HEAD", "code": "200"}, 1},
		{"http_requests_total", map[string]string{"handler": "/time", "method": "POST", "code": "405"}, 1},
		{"http_requests_total", map[string]string{"handler": notFoundLabel, "method": "GET", "code": "404"}, 1},
		{"http_requests_total", map[string]string{"handler": notFoundLabel, "method": "OTHER", "code": "404"}, 1},
		{"cache_requests_total", map[string]string{"result": "miss"}, 1},
		{"cache_requests_total", map[string]string{"result": "hit"}, 2},
		{"cache_fills_total", map[string]string{"key": "time"}, 1},
		{"cache_fills_total", map[string]string{"key": "static-text"}, 0},
		{"cache_entries", nil, 1},
		{"cache_evictions_total", nil, 0},
	}
	for _, tt := range tests {
		if got := s.metricValue(t, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func TestUnknownPathsDoNotGrowSeries(t *testing.T) {
	s := newTestService(t)
	methods := []string{"GET", "DELETE", "FOO", "X-ANYTHING"}
	for _, m := range methods {
		s.do(m, "/warm-up", "")
	}
	before := s.seriesCount(t)
	for i := range 500 {
		s.do(methods[i%len(methods)], fmt.Sprintf("/scan/%d/%x", i, i*7919), "")
	}
	if after := s.seriesCount(t); after != before {
		t.Errorf("series grew from %d to %d after scanning unknown paths", before, after)
	}
}

func TestLogging(t *testing.T) {
	s := newTestService(t)
	s.do("GET", "/time", "")
	s.do("GET", "/time", "")
	s.do("GET", "/time", "application/json")

	var fills, requests int
	for line := range strings.Lines(s.logs.String()) {
		var entry struct{ Level, Msg, Key string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		switch {
		case entry.Msg == "cache fill" && entry.Level == "INFO" && entry.Key == "time":
			fills++
		case entry.Msg == "request" && entry.Level == "DEBUG":
			requests++
		case entry.Level != "DEBUG":
			t.Errorf("unexpected %s line: %s", entry.Level, line)
		}
	}
	if fills != 1 || requests != 3 {
		t.Errorf("logged %d cache fills and %d requests, want 1 and 3", fills, requests)
	}
}

// FuzzPath checks that no request path causes a server error, a panic or a
// new metric series. Under plain go test it runs the seeds.
func FuzzPath(f *testing.F) {
	for _, seed := range []string{
		"", "/", "*", "/time", "/static-text", "/metrics", "/healthz", "/readyz",
		"//time", "/time/", "/./time", "/../time", "/%2e%2e/time", "/tim%65", "/time?x=1",
		"/\x00", "/a b", "/\xff\xfe", "/" + strings.Repeat("a/", 2000), "no-leading-slash",
	} {
		f.Add(seed)
	}
	s := newTestService(f)
	for _, path := range []string{"/", "/static-text", "/time", "/metrics", "/healthz", "/readyz", "/warm-up"} {
		s.do("GET", path, "")
	}
	baseline := s.seriesCount(f)

	f.Fuzz(func(t *testing.T, path string) {
		rec := s.do("GET", path, "")
		if rec.Code >= 500 {
			t.Fatalf("GET %q: status %d", path, rec.Code)
		}
		if got := s.seriesCount(t); got != baseline {
			t.Fatalf("GET %q: series count %d, want %d", path, got, baseline)
		}
	})
}
