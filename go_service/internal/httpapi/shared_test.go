package httpapi

import (
	"testing"
	"time"

	"cacheplatform/go_service/internal/clocktest"
	"cacheplatform/go_service/internal/redistest"
	"cacheplatform/go_service/internal/sharedcache"
)

// Three replicas in front of one real Redis, on one (fake) clock: within the
// TTL each answers /time with the same body and the same Age, whichever
// answers first and whenever the others first ask, and the fleet fills the
// key once per TTL.
func TestReplicasShareTimeAndAge(t *testing.T) {
	srv := redistest.Start(t)
	clock := clocktest.New(time.Now()) // Redis' own PX expiry runs on the real clock
	replicas := make([]*testService, 3)
	for i := range replicas {
		// Redis' timeout and the lease wait are not under test here: a minute, which no live
		// Redis or filler misses on any machine. The service's 50 ms and 250 ms would have a
		// slow answer filled locally, correctly, and pass for a second fill.
		client, err := sharedcache.NewClient(srv.URL(), "", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		tier, err := sharedcache.New(sharedcache.Options{
			Client: client, Prefix: "go_service:", TTL: testTTL, Timeout: time.Minute,
			LeaseWait: time.Minute, PollInterval: 5 * time.Millisecond, MaxEntryBytes: 4096, Now: clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = newReplica(t, clock, tier)
	}

	for ttl := range 2 {
		// Each TTL a different replica fills, and the others ask for the first time later:
		// their Age must count from the fill, not from when they first asked.
		order := []int{ttl % 3, (ttl + 1) % 3, (ttl + 2) % 3}
		first := replicas[order[0]].do("GET", "/time", "")
		for step, wait := range []time.Duration{0, 4 * time.Second, 5 * time.Second} {
			clock.Advance(wait)
			wantAge := []string{"0", "4", "9"}[step]
			for _, i := range order[:step+1] {
				rec := replicas[i].do("GET", "/time", "")
				if rec.Code != 200 || rec.Body.String() != first.Body.String() || rec.Header().Get("Age") != wantAge {
					t.Fatalf("TTL %d, step %d: replica %d answered %d %q Age %s; want 200 %q Age %s",
						ttl, step, i, rec.Code, rec.Body.String(), rec.Header().Get("Age"), first.Body.String(), wantAge)
				}
			}
		}
		clock.Advance(time.Second) // 10 s after the fill
		fleetFills := 0.0
		for _, r := range replicas {
			fleetFills += r.metricValue(t, "cache_fills_total", map[string]string{"key": "time"})
		}
		if fleetFills != float64(ttl+1) {
			t.Fatalf("after %d TTLs the fleet filled /time %v times, want %d", ttl+1, fleetFills, ttl+1)
		}
	}
}
