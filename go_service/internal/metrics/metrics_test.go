package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"cacheplatform/go_service/internal/cache"
)

func TestMethodLabelIsBounded(t *testing.T) {
	tests := map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "POST", "DELETE": "DELETE", "OPTIONS": "OPTIONS",
		"get": "OTHER", "PURGE": "OTHER", "": "OTHER", "X-" + string(make([]byte, 300)): "OTHER",
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

func TestCacheMetricsReadStatsAtScrapeTime(t *testing.T) {
	reg := prometheus.NewRegistry()
	current := cache.Stats{Hits: 3, Misses: 2, Evictions: 1, Expirations: 4, Entries: 5}
	if err := RegisterCache(reg, func() cache.Stats { return current }); err != nil {
		t.Fatal(err)
	}
	current.Hits = 30
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
	want := map[string]float64{
		"cache_requests_total/hit": 30, "cache_requests_total/miss": 2,
		"cache_evictions_total": 1, "cache_expirations_total": 4, "cache_entries": 5,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
}
