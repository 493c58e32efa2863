package metrics

import (
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"cacheplatform/go_service/internal/cache"
	"cacheplatform/go_service/internal/sharedcache"
)

func TestMethodLabelIsBounded(t *testing.T) {
	tests := map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "POST", "DELETE": "DELETE", "OPTIONS": "OPTIONS",
		"CONNECT": "OTHER", "TRACE": "OTHER", "get": "OTHER", "PURGE": "OTHER", "": "OTHER", "X-" + string(make([]byte, 300)): "OTHER",
	}
	for method, want := range tests {
		if got := methodLabel(method); got != want {
			t.Errorf("methodLabel(%q) = %q, want %q", method, got, want)
		}
	}
}

func TestRegisteringTwiceFails(t *testing.T) {
	reg := NewRegistry()
	stats := func() cache.Stats { return cache.Stats{} }
	if _, err := NewHTTP(reg); err != nil {
		t.Fatalf("NewHTTP: %v", err)
	}
	if err := RegisterCache(reg, stats); err != nil {
		t.Fatalf("RegisterCache: %v", err)
	}
	if _, err := NewHTTP(reg); err == nil {
		t.Error("second NewHTTP on one registry succeeded")
	}
	if err := RegisterCache(reg, stats); err == nil {
		t.Error("second RegisterCache on one registry succeeded")
	}
}

// Both tiers' counters are read from their stats at scrape time: a value changed after
// registering is what the scrape shows.
func TestCacheMetricsReadStatsAtScrapeTime(t *testing.T) {
	for _, tc := range []struct {
		name     string
		register func(prometheus.Registerer) error
		want     map[string]float64
	}{
		{
			name: "in-process tier",
			register: func(reg prometheus.Registerer) error {
				current := cache.Stats{Hits: 3, Misses: 2, Evictions: 1, Expirations: 4, Entries: 5}
				err := RegisterCache(reg, func() cache.Stats { return current })
				current.Hits = 30
				return err
			},
			want: map[string]float64{
				"cache_requests_total/hit": 30, "cache_requests_total/miss": 2,
				"cache_evictions_total": 1, "cache_expirations_total": 4, "cache_entries": 5,
			},
		},
		{
			name: "shared tier",
			register: func(reg prometheus.Registerer) error {
				current := sharedcache.Stats{Hits: 7, Misses: 3, LookupErrors: 1, Errors: 2, Fills: 4, Invalid: 1}
				err := RegisterSharedCache(reg, func() sharedcache.Stats { return current })
				current.Invalid = 2
				return err
			},
			want: map[string]float64{
				"cache_shared_requests_total/hit": 7, "cache_shared_requests_total/miss": 3,
				"cache_shared_requests_total/error": 1, "redis_errors_total": 2, "redis_invalid_values_total": 2,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if err := tc.register(reg); err != nil {
				t.Fatal(err)
			}
			got := gathered(t, reg)
			for name, v := range tc.want {
				if value, ok := got[name]; !ok || value != v {
					t.Errorf("%s = %v (exposed: %v), want %v", name, value, ok, v)
				}
			}
		})
	}
}

// gathered is reg's samples by name and label values ("name/value..."); counters and gauges.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return got
}

func TestBuildInfoNamesVersionRevisionAndRuntime(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := RegisterBuildInfo(reg, "1.2.3", "abc123"); err != nil {
		t.Fatalf("RegisterBuildInfo: %v", err)
	}
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || len(families[0].GetMetric()) != 1 {
		t.Fatalf("Gather() = %v, %v; want one build_info series", families, err)
	}
	metric := families[0].GetMetric()[0]
	labels := map[string]string{}
	for _, pair := range metric.GetLabel() {
		labels[pair.GetName()] = pair.GetValue()
	}
	want := map[string]string{"version": "1.2.3", "revision": "abc123", "runtime": runtime.Version()}
	if families[0].GetName() != "build_info" || metric.GetGauge().GetValue() != 1 || len(labels) != len(want) {
		t.Fatalf("got %s = %v %v, want build_info = 1 %v", families[0].GetName(), metric.GetGauge().GetValue(), labels, want)
	}
	for name, value := range want {
		if labels[name] != value {
			t.Errorf("label %s = %q, want %q", name, labels[name], value)
		}
	}
}
