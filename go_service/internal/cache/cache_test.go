package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"cacheplatform/go_service/internal/clocktest"
)

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}

const testTTL = 10 * time.Second

func newTestCache(t *testing.T, maxEntries int, clock *clocktest.Clock) *Cache[string, int] {
	t.Helper()
	c, err := New[string, int](Options{
		MaxEntries:      maxEntries,
		TTL:             testTTL,
		JanitorInterval: time.Second,
		Now:             clock.Now,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// keysByRecency lists the stored keys, most recently used first.
func keysByRecency(c *Cache[string, int]) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys []string
	for el := c.recency.Front(); el != nil; el = el.Next() {
		keys = append(keys, el.Value.(*entry[string, int]).key)
	}
	return keys
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	valid := Options{MaxEntries: 1, TTL: time.Second, JanitorInterval: time.Second}
	tests := []struct {
		name   string
		modify func(*Options)
	}{
		{"zero max entries", func(o *Options) { o.MaxEntries = 0 }},
		{"negative max entries", func(o *Options) { o.MaxEntries = -1 }},
		{"zero ttl", func(o *Options) { o.TTL = 0 }},
		{"zero janitor interval", func(o *Options) { o.JanitorInterval = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := valid
			tt.modify(&opts)
			if _, err := New[string, int](opts); err == nil {
				t.Fatal("New succeeded, want error")
			}
		})
	}
	if _, err := New[string, int](valid); err != nil {
		t.Fatalf("New(valid) = %v", err)
	}
}

func TestGetHonoursTTL(t *testing.T) {
	tests := []struct {
		name    string
		elapsed time.Duration
		wantHit bool
	}{
		{"just stored", 0, true},
		{"one nanosecond before ttl", testTTL - time.Nanosecond, true},
		{"exactly ttl", testTTL, false},
		{"long after ttl", 3 * testTTL, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := newTestCache(t, 10, clock)
			c.Set("k", 7)
			stored := clock.Now()
			clock.Advance(tt.elapsed)

			v, storedAt, ok := c.Get("k")
			if ok != tt.wantHit {
				t.Fatalf("Get ok = %v, want %v", ok, tt.wantHit)
			}
			if !ok {
				if got := c.Stats().Expirations; got != 1 {
					t.Errorf("Expirations = %d, want 1", got)
				}
				if c.Len() != 0 {
					t.Errorf("Len = %d, want expired entry removed", c.Len())
				}
				return
			}
			if v != 7 || !storedAt.Equal(stored) {
				t.Errorf("Get = %d stored %v, want 7 stored %v", v, storedAt, stored)
			}
		})
	}
}

func TestLRUEviction(t *testing.T) {
	tests := []struct {
		name          string
		ops           []string // "set:k" or "get:k"
		wantKeys      []string // most recently used first
		wantEvictions uint64
	}{
		{
			name:     "within bound nothing is evicted",
			ops:      []string{"set:a", "set:b", "set:c"},
			wantKeys: []string{"c", "b", "a"},
		},
		{
			name:          "oldest write is evicted first",
			ops:           []string{"set:a", "set:b", "set:c", "set:d"},
			wantKeys:      []string{"d", "c", "b"},
			wantEvictions: 1,
		},
		{
			name:          "a read protects an entry",
			ops:           []string{"set:a", "set:b", "set:c", "get:a", "set:d"},
			wantKeys:      []string{"d", "a", "c"},
			wantEvictions: 1,
		},
		{
			name:          "overwriting protects an entry",
			ops:           []string{"set:a", "set:b", "set:c", "set:a", "set:d", "set:e"},
			wantKeys:      []string{"e", "d", "a"},
			wantEvictions: 2,
		},
		{
			name:          "a miss changes nothing",
			ops:           []string{"set:a", "set:b", "set:c", "get:z", "set:d"},
			wantKeys:      []string{"d", "c", "b"},
			wantEvictions: 1,
		},
		{
			name:          "every write past the bound evicts one",
			ops:           []string{"set:a", "set:b", "set:c", "set:d", "set:e", "set:f", "set:g"},
			wantKeys:      []string{"g", "f", "e"},
			wantEvictions: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, 3, newFakeClock())
			for _, op := range tt.ops {
				switch op[:4] {
				case "set:":
					c.Set(op[4:], 1)
				case "get:":
					c.Get(op[4:])
				default:
					t.Fatalf("bad op %q", op)
				}
			}
			if got := keysByRecency(c); !slices.Equal(got, tt.wantKeys) {
				t.Errorf("keys = %v, want %v", got, tt.wantKeys)
			}
			if got := c.Stats().Evictions; got != tt.wantEvictions {
				t.Errorf("Evictions = %d, want %d", got, tt.wantEvictions)
			}
		})
	}
}

func TestSetReplacesValueAndRestartsTTL(t *testing.T) {
	clock := newFakeClock()
	c := newTestCache(t, 10, clock)
	c.Set("k", 1)
	clock.Advance(testTTL - time.Second)
	c.Set("k", 2)
	clock.Advance(testTTL - time.Second)

	v, storedAt, ok := c.Get("k")
	if !ok || v != 2 {
		t.Fatalf("Get = %d, %v; want 2, true", v, ok)
	}
	if want := clock.Now().Add(-(testTTL - time.Second)); !storedAt.Equal(want) {
		t.Errorf("storedAt = %v, want %v", storedAt, want)
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
}

func TestStatsCountHitsAndMisses(t *testing.T) {
	c := newTestCache(t, 10, newFakeClock())
	c.Set("a", 1)
	c.Get("a")
	c.Get("a")
	c.Get("b")
	want := Stats{Hits: 2, Misses: 1, Entries: 1}
	if got := c.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestSweepRemovesOnlyExpiredEntries(t *testing.T) {
	clock := newFakeClock()
	c := newTestCache(t, 10, clock)
	c.Set("old-1", 1)
	c.Set("old-2", 2)
	clock.Advance(testTTL / 2)
	c.Set("young", 3)
	c.Get("old-1") // recency must not matter to the sweep
	clock.Advance(testTTL / 2)

	if removed := c.Sweep(); removed != 2 {
		t.Errorf("Sweep removed %d, want 2", removed)
	}
	if got := keysByRecency(c); !slices.Equal(got, []string{"young"}) {
		t.Errorf("keys after sweep = %v, want [young]", got)
	}
	if got := c.Stats().Expirations; got != 2 {
		t.Errorf("Expirations = %d, want 2", got)
	}
	if removed := c.Sweep(); removed != 0 {
		t.Errorf("second Sweep removed %d, want 0", removed)
	}
}

// The janitor runs on a real ticker, so this test uses a synctest bubble:
// inside it time is virtual and the sleep below returns immediately.
func TestRunSweepsPeriodicallyAndStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New[string, int](Options{MaxEntries: 10, TTL: time.Minute, JanitorInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c.Set("k", 1)
		ctx, cancel := context.WithCancel(t.Context())
		stopped := make(chan struct{})
		go func() {
			c.Run(ctx)
			close(stopped)
		}()

		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		if c.Len() != 0 {
			t.Errorf("Len = %d after TTL and a janitor tick, want 0", c.Len())
		}

		cancel()
		synctest.Wait()
		select {
		case <-stopped:
		default:
			t.Fatal("Run did not return after its context was cancelled")
		}
	})
}

func TestGetOrLoadConcurrentMissesCallLoaderOnce(t *testing.T) {
	const callers = 50
	c := newTestCache(t, 10, newFakeClock())
	var calls atomic.Int32
	started := make(chan struct{})
	release := make(chan struct{})
	load := func(context.Context) (int, error) {
		if calls.Add(1) == 1 {
			close(started)
		}
		<-release
		return 42, nil
	}

	var wg sync.WaitGroup
	results := make(chan int, callers)
	for range callers {
		wg.Go(func() {
			v, _, _, err := c.GetOrLoad(t.Context(), "k", load)
			if err != nil {
				t.Errorf("GetOrLoad: %v", err)
			}
			results <- v
		})
	}
	<-started
	close(release)
	wg.Wait()
	close(results)

	if got := calls.Load(); got != 1 {
		t.Errorf("loader called %d times, want 1", got)
	}
	for v := range results {
		if v != 42 {
			t.Errorf("GetOrLoad = %d, want 42", v)
		}
	}
}

func TestGetOrLoadReportsMissThenHit(t *testing.T) {
	clock := newFakeClock()
	c := newTestCache(t, 10, clock)
	load := func(context.Context) (int, error) { return 1, nil }

	_, storedAt, hit, err := c.GetOrLoad(t.Context(), "k", load)
	if err != nil || hit {
		t.Fatalf("first GetOrLoad hit=%v err=%v, want a miss", hit, err)
	}
	if !storedAt.Equal(clock.Now()) {
		t.Errorf("storedAt = %v, want %v", storedAt, clock.Now())
	}
	clock.Advance(time.Second)
	_, storedAtAgain, hit, err := c.GetOrLoad(t.Context(), "k", load)
	if err != nil || !hit {
		t.Fatalf("second GetOrLoad hit=%v err=%v, want a hit", hit, err)
	}
	if !storedAtAgain.Equal(storedAt) {
		t.Errorf("hit storedAt = %v, want %v", storedAtAgain, storedAt)
	}
	if got := c.Stats(); got.Hits != 1 || got.Misses != 1 {
		t.Errorf("Stats = %+v, want 1 hit and 1 miss", got)
	}
}

func TestGetOrLoadDoesNotCacheErrors(t *testing.T) {
	c := newTestCache(t, 10, newFakeClock())
	errBoom := errors.New("boom")
	var calls int
	load := func(context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, errBoom
		}
		return 5, nil
	}

	if _, _, _, err := c.GetOrLoad(t.Context(), "k", load); !errors.Is(err, errBoom) {
		t.Fatalf("first GetOrLoad err = %v, want %v", err, errBoom)
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d after a failed load, want 0", c.Len())
	}
	v, _, hit, err := c.GetOrLoad(t.Context(), "k", load)
	if err != nil || hit || v != 5 {
		t.Fatalf("second GetOrLoad = %d hit=%v err=%v, want a fresh load of 5", v, hit, err)
	}
}

func TestGetOrLoadWaiterGivesUpButLoadCompletes(t *testing.T) {
	c := newTestCache(t, 10, newFakeClock())
	started := make(chan struct{})
	release := make(chan struct{})
	loadDone := make(chan struct{})
	load := func(ctx context.Context) (int, error) {
		defer close(loadDone)
		close(started)
		<-release
		// The shared load must not inherit the impatient caller's cancellation.
		return 9, ctx.Err()
	}

	ctx, cancel := context.WithCancel(t.Context())
	waiterErr := make(chan error)
	go func() {
		_, _, _, err := c.GetOrLoad(ctx, "k", load)
		waiterErr <- err
	}()
	<-started
	cancel()
	if err := <-waiterErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled GetOrLoad err = %v, want context.Canceled", err)
	}
	close(release)
	<-loadDone

	// The flight stores before it is forgotten, so Get may briefly race it;
	// GetOrLoad joins the flight or sees the stored value either way.
	v, _, _, err := c.GetOrLoad(t.Context(), "k", func(context.Context) (int, error) {
		return 0, errors.New("loader must not run again")
	})
	if err != nil || v != 9 {
		t.Fatalf("GetOrLoad after abandoned load = %d, %v; want 9, nil", v, err)
	}
}

func TestGetOrLoadKeepsKeysThatPrintAlikeApart(t *testing.T) {
	type key struct{ id any }
	intKey, int64Key := key{int(1)}, key{int64(1)}
	if flightKey(intKey) != flightKey(int64Key) {
		t.Fatalf("test premise: flight keys %q and %q should collide", flightKey(intKey), flightKey(int64Key))
	}
	c, err := New[key, string](Options{MaxEntries: 10, TTL: time.Minute, JanitorInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}

	started := make(chan struct{})
	release := make(chan struct{})
	firstDone := make(chan string)
	go func() {
		v, _, _, _ := c.GetOrLoad(t.Context(), intKey, func(context.Context) (string, error) {
			close(started)
			<-release
			return "int", nil
		})
		firstDone <- v
	}()
	<-started

	secondDone := make(chan string)
	go func() {
		v, _, _, _ := c.GetOrLoad(t.Context(), int64Key, func(context.Context) (string, error) {
			return "int64", nil
		})
		secondDone <- v
	}()
	close(release)

	if got := <-firstDone; got != "int" {
		t.Errorf("GetOrLoad(intKey) = %q, want int", got)
	}
	if got := <-secondDone; got != "int64" {
		t.Errorf("GetOrLoad(int64Key) = %q, want int64", got)
	}
}

func TestGetOrLoadUnsharedLoadError(t *testing.T) {
	c := newTestCache(t, 10, newFakeClock())
	errBoom := errors.New("boom")
	_, _, _, err := c.loadUnshared(t.Context(), "k", func(context.Context) (int, time.Time, error) { return 0, time.Time{}, errBoom })
	if !errors.Is(err, errBoom) {
		t.Fatalf("loadUnshared err = %v, want %v", err, errBoom)
	}
}

// Run with -race: every public method from many goroutines at once, while
// the clock moves so entries keep expiring.
func TestConcurrentUseStaysConsistent(t *testing.T) {
	const (
		maxEntries = 16
		workers    = 8
		opsEach    = 2000
	)
	clock := newFakeClock()
	c := newTestCache(t, maxEntries, clock)
	var lookups atomic.Uint64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range opsEach {
				key := fmt.Sprint((w*7 + i) % (maxEntries * 3))
				switch i % 6 {
				case 0:
					c.Set(key, i)
				case 1, 2:
					c.Get(key)
					lookups.Add(1)
				case 3:
					if _, _, _, err := c.GetOrLoad(t.Context(), key, func(context.Context) (int, error) { return i, nil }); err != nil {
						t.Errorf("GetOrLoad: %v", err)
					}
					lookups.Add(1)
				case 4:
					c.Sweep()
				case 5:
					clock.Advance(time.Second)
					c.Stats()
				}
			}
		})
	}
	wg.Wait()

	stats := c.Stats()
	if stats.Entries > maxEntries {
		t.Errorf("Entries = %d, exceeds MaxEntries %d", stats.Entries, maxEntries)
	}
	if got := stats.Hits + stats.Misses; got != lookups.Load() {
		t.Errorf("Hits+Misses = %d, want %d lookups", got, lookups.Load())
	}
	if got := len(keysByRecency(c)); got != stats.Entries {
		t.Errorf("list holds %d entries, map holds %d", got, stats.Entries)
	}
}

// A stamped load's entry ages from the time the load reports, not from when it
// was stored: a copy of an older value expires with the original.
func TestGetOrLoadStampedAgesFromTheReportedTime(t *testing.T) {
	clock := newFakeClock()
	c := newTestCache(t, 10, clock)
	madeAt := clock.Now().Add(-7 * time.Second)
	load := func(context.Context) (int, time.Time, error) { return 1, madeAt, nil }

	_, storedAt, hit, err := c.GetOrLoadStamped(t.Context(), "k", load)
	if err != nil || hit || !storedAt.Equal(madeAt) {
		t.Fatalf("first GetOrLoadStamped = storedAt %v, hit %v, err %v; want %v, miss, nil", storedAt, hit, err, madeAt)
	}
	clock.Advance(testTTL - 7*time.Second - time.Nanosecond)
	if _, _, ok := c.Get("k"); !ok {
		t.Fatal("entry expired before its reported time + TTL")
	}
	clock.Advance(time.Nanosecond)
	if _, _, ok := c.Get("k"); ok {
		t.Fatal("entry still served at its reported time + TTL")
	}
}
