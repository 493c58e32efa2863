// Package metrics defines the service's Prometheus metrics. Everything is
// registered on a registry the caller creates, never the global default,
// so each server (and each test) gets its own isolated set.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"cacheplatform/go_service/internal/cache"
	"cacheplatform/go_service/internal/sharedcache"
)

// NewRegistry returns a registry holding the Go runtime and process
// collectors; the service adds its own metrics to it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	// Registering two distinct collectors on an empty registry cannot fail.
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// RegisterBuildInfo exposes build_info{version, revision, runtime} = 1 on reg: what is running,
// in the vocabulary both services share (api/metrics.json). runtime is runtime.Version(), like
// "go1.27.3".
func RegisterBuildInfo(reg prometheus.Registerer, version, revision string) error {
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "build_info",
		Help: "Always 1; the labels name the running build: product version, source revision, language runtime.",
		ConstLabels: prometheus.Labels{
			"version":  version,
			"revision": revision,
			"runtime":  runtime.Version(),
		},
	})
	info.Set(1)
	return reg.Register(info)
}

// HTTP records one observation per served request.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTP registers the request metrics on reg.
//
// Callers must pass a bounded handler label (a route's path from
// api/openapi.json or "notfound", never a raw request path); Observe bounds the
// method label itself. Labels and buckets are the shared vocabulary of
// api/metrics.json.
func NewHTTP(reg prometheus.Registerer) (*HTTP, error) {
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"handler", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds",
			Help: "Time to serve an HTTP request, by route pattern and method.",
			// From 100µs (a cache hit takes tens of microseconds) to 10 s (the
			// longest proxy read timeout), as api/metrics.json fixes them.
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"handler", "method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observe records a request served by handler.
func (m *HTTP) Observe(handler, method string, code int, elapsed time.Duration) {
	method = methodLabel(method)
	m.requests.WithLabelValues(handler, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(handler, method).Observe(elapsed.Seconds())
}

// methodLabel maps the request method onto the fixed set of api/metrics.json,
// because clients can send any token as a method and each would otherwise
// become a new series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	default:
		return "OTHER"
	}
}

// RegisterCache exposes the counters returned by stats on reg. The values
// are read at scrape time, so the cache needs no metrics code of its own.
func RegisterCache(reg prometheus.Registerer, stats func() cache.Stats) error {
	lookups := func(result string, count func(cache.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "cache_requests_total",
			Help:        "Cache lookups, by result.",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 { return float64(count(stats())) })
	}
	for _, c := range []prometheus.Collector{
		lookups("hit", func(s cache.Stats) uint64 { return s.Hits }),
		lookups("miss", func(s cache.Stats) uint64 { return s.Misses }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cache_evictions_total",
			Help: "Cache entries evicted to stay within the size bound.",
		}, func() float64 { return float64(stats().Evictions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cache_expirations_total",
			Help: "Cache entries removed because their TTL had passed.",
		}, func() float64 { return float64(stats().Expirations) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cache_entries",
			Help: "Entries currently held by the cache, including expired ones not yet swept.",
		}, func() float64 { return float64(stats().Entries) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// CacheFills counts the values this process computed, by cache key.
type CacheFills struct{ fills *prometheus.CounterVec }

// NewCacheFills registers cache_fills_total{key} on reg, with a zero
// series for each of keys (the cached routes' names, a fixed set: the label
// stays bounded because only these are ever counted).
func NewCacheFills(reg prometheus.Registerer, keys []string) (*CacheFills, error) {
	fills := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cache_fills_total",
		Help: "Cached values this process computed, by cache key. Summed over a fleet sharing Redis: the fleet's fills.",
	}, []string{"key"})
	for _, k := range keys {
		fills.WithLabelValues(k)
	}
	if err := reg.Register(fills); err != nil {
		return nil, err
	}
	return &CacheFills{fills: fills}, nil
}

// Inc counts one fill of key, which must be one of the keys given to NewCacheFills.
func (f *CacheFills) Inc(key string) {
	f.fills.WithLabelValues(key).Inc()
}

// RegisterSharedCache exposes the shared (Redis) tier's counters on reg,
// read at scrape time: cache_shared_requests_total{result} (hit, miss, or
// error: Redis failed and the value was computed locally),
// redis_errors_total (every failed or timed-out Redis command) and
// redis_invalid_values_total (entries found in Redis that the tier did not
// write, each a miss overwritten by its fill).
func RegisterSharedCache(reg prometheus.Registerer, stats func() sharedcache.Stats) error {
	lookups := func(result string, count func(sharedcache.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "cache_shared_requests_total",
			Help:        "Lookups in the cache tier shared by every replica (Redis), by result.",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 { return float64(count(stats())) })
	}
	for _, c := range []prometheus.Collector{
		lookups("hit", func(s sharedcache.Stats) uint64 { return s.Hits }),
		lookups("miss", func(s sharedcache.Stats) uint64 { return s.Misses }),
		lookups("error", func(s sharedcache.Stats) uint64 { return s.LookupErrors }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "redis_errors_total",
			Help: "Redis commands that failed or timed out; the request was served all the same.",
		}, func() float64 { return float64(stats().Errors) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "redis_invalid_values_total",
			Help: "Values read from Redis that were rejected (malformed, oversized, not UTF-8, not a string, or made in the future); each was a miss, overwritten by a fresh fill.",
		}, func() float64 { return float64(stats().Invalid) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
