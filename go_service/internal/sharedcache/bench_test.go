package sharedcache

import (
	"context"
	"testing"
	"time"

	"cacheplatform/go_service/internal/redistest"
)

// BenchmarkLoadHit is the shared tier's hit path, what an in-process miss
// costs while Redis holds the value: one GET on loopback and decoding the
// stamp. `tools/bazel run //go_service/internal/sharedcache:bench`.
func BenchmarkLoadHit(b *testing.B) {
	srv := redistest.Start(b)
	client, err := NewClient(srv.URL(), "", time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Close() })
	tier, err := New(Options{Client: client, Prefix: "bench:", TTL: time.Hour, Timeout: time.Second, LeaseWait: time.Second, PollInterval: time.Millisecond, MaxEntryBytes: 4096})
	if err != nil {
		b.Fatal(err)
	}
	fill := func(context.Context) (string, error) { return time.Now().UTC().Format(time.RFC3339Nano), nil }
	if _, _, err := tier.Load(b.Context(), "time", fill); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := tier.Load(context.Background(), "time", fill); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if s := tier.Stats(); s.Fills != 1 || s.Errors != 0 {
		b.Fatalf("stats %+v: the benchmark measured more than hits", s)
	}
}
