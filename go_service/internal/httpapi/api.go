// Package httpapi is the service's HTTP surface: the routes of the shared
// contract (api/openapi.json at the repository root), request metrics and a
// debug log line per request.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cacheplatform/go_service/internal/cache"
	"cacheplatform/go_service/internal/metrics"
	"cacheplatform/go_service/internal/sharedcache"
)

// Config holds what the handler needs from the rest of the service.
type Config struct {
	// Cache holds the cached routes' values, keyed by route name.
	Cache *cache.Cache[string, string]
	// Shared is the tier behind Cache that every replica shares; nil for none.
	Shared *sharedcache.Tier
	// Now must be the clock the cache uses, so Age is measured consistently.
	Now func() time.Time
	// Ready reports whether the service should take traffic (/readyz).
	Ready    func() bool
	Metrics  *metrics.HTTP
	Fills    *metrics.CacheFills // see CachedKeys
	Gatherer prometheus.Gatherer // served at /metrics
	Logger   *slog.Logger
}

// CachedKeys returns the cache keys of the cached routes, for
// metrics.NewCacheFills.
func CachedKeys() []string {
	return append([]string(nil), cachedKeys...)
}

// notFoundLabel is the metrics handler label for every unknown path, so
// scanning random paths cannot create new series.
const notFoundLabel = "notfound"

type route struct {
	path    string // the one literal path the route serves
	summary string // shown in the banner
	handler http.Handler
}

type api struct {
	mux        *http.ServeMux
	routePaths map[string]string // ServeMux pattern -> the path it serves
	metrics    *metrics.HTTP
	logger     *slog.Logger
}

// New returns the service's http.Handler.
func New(cfg Config) http.Handler {
	content := &cachedContent{cache: cfg.Cache, shared: cfg.Shared, fills: cfg.Fills, now: cfg.Now, logger: cfg.Logger}
	routes := []route{
		{path: "/", summary: "this banner"},
		{path: "/static-text", summary: "fixed text, cached (JSON with Accept: application/json)",
			handler: content.handler("static-text", "text", loadStaticText)},
		{path: "/time", summary: "server time, RFC 3339 UTC, cached (JSON with Accept: application/json)",
			handler: content.handler("time", "time", timeLoader(cfg.Now))},
		{path: "/metrics", summary: "Prometheus metrics",
			handler: promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})},
		{path: "/healthz", summary: "liveness",
			handler: textHandler(http.StatusOK, "ok\n")},
		{path: "/readyz", summary: "readiness, 503 while starting or draining",
			handler: readinessHandler(cfg.Ready)},
	}
	// The banner lists every route, itself included.
	routes[0].handler = textHandler(http.StatusOK, banner(routes))

	a := &api{
		mux:        http.NewServeMux(),
		routePaths: make(map[string]string, len(routes)),
		metrics:    cfg.Metrics,
		logger:     cfg.Logger,
	}
	for _, r := range routes {
		pattern := http.MethodGet + " " + muxPath(r.path) // GET patterns also match HEAD
		a.mux.Handle(pattern, r.handler)
		a.routePaths[pattern] = r.path
	}
	return a
}

// muxPath turns a literal path into a ServeMux pattern path matching only
// that path: a bare "/" would match every path.
func muxPath(path string) string {
	if path == "/" {
		return "/{$}"
	}
	return path
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	handler, label := a.match(r)
	// On every response (api/openapi.json, x-common): no client guesses another type than
	// Content-Type says, and no shared cache keeps an answer of this service, which caches in
	// process: a second TTL on top would make X-Cache and Age describe another response.
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	handler.ServeHTTP(sw, r)
	elapsed := time.Since(start)

	a.metrics.Observe(label, r.Method, sw.status, elapsed)
	a.logger.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("handler", label),
		slog.Int("status", sw.status),
		slog.Duration("duration", elapsed))
}

// match returns the handler for r and the metrics label naming it: the
// route's path (as api/openapi.json names it, the label both services use),
// or notFoundLabel.
//
// ServeMux itself answers unknown paths and wrong methods with bodies that
// do not follow the contract, and redirects unclean paths such as "//time"
// to "/time", which behind the Nginx path prefix would point outside this
// service. So the mux is only used to find the route, only a route's exact
// path matches it, and everything else is answered here.
func (a *api) match(r *http.Request) (http.Handler, string) {
	if h, path, ok := a.lookup(r); ok {
		return h, path
	}
	asGet := r.Clone(r.Context())
	asGet.Method = http.MethodGet
	if _, path, ok := a.lookup(asGet); ok {
		return http.HandlerFunc(methodNotAllowed), path
	}
	return http.HandlerFunc(notFound), notFoundLabel
}

// lookup reports whether r is for a route's exact path, and which.
func (a *api) lookup(r *http.Request) (http.Handler, string, bool) {
	h, pattern := a.mux.Handler(r)
	path, ok := a.routePaths[pattern]
	return h, path, ok && r.URL.Path == path
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusNotFound, "not found\n")
}

func methodNotAllowed(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	writeText(w, http.StatusMethodNotAllowed, "method not allowed\n")
}

// statusWriter remembers the status code written through it, for metrics.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter {
	return w.ResponseWriter
}
