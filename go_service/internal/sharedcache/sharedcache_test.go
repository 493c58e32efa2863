package sharedcache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"cacheplatform/go_service/internal/cache"
	"cacheplatform/go_service/internal/clocktest"
	"cacheplatform/go_service/internal/polltest"
	"cacheplatform/go_service/internal/redistest"
)

const (
	testTTL = 10 * time.Second
	// testTimeout is the production default, in the tests with Redis down or paused; they count
	// the commands a Load sends and check each one's deadline rather than time the Load.
	testTimeout = 50 * time.Millisecond
	// sharingTimeout bounds Redis commands and lease waits in the tests of sharing, where Redis
	// is up and neither bound is under test: no live Redis misses it, on any machine (a stall
	// that long ends in go test's own timeout first). With a short one, a slow answer is counted
	// as an error and filled locally, correctly, and passes for a second fill.
	sharingTimeout = time.Minute
	testLease      = 300 * time.Millisecond
	// stallBound is where a test stops waiting for a Load that should have ended after one
	// Timeout or LeaseWait: far beyond either plus any scheduling delay of a busy machine.
	stallBound = 10 * time.Second
	// testMaxEntryBytes is the production bound (internal/server).
	testMaxEntryBytes = 4096
)

// newClock starts at the real time: Redis' own PX expiry runs on it.
func newClock() *clocktest.Clock { return clocktest.New(time.Now()) }

// replica is one service process's view: its own connection pool to the shared Redis.
func replica(t *testing.T, srv *redistest.Server, clock *clocktest.Clock) *Tier {
	t.Helper()
	tier, _ := loggedReplica(t, srv, clock, sharingTimeout, sharingTimeout)
	return tier
}

// loggedReplica is replica with the Redis timeout and lease wait given, and the log of the
// commands its client sends.
func loggedReplica(t *testing.T, srv *redistest.Server, clock *clocktest.Clock, timeout, leaseWait time.Duration) (*Tier, *commandLog) {
	t.Helper()
	client, err := NewClient(srv.URL(), "", timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	log := &commandLog{}
	client.AddHook(log)
	tier, err := New(Options{
		Client:        client,
		Prefix:        "test:",
		TTL:           testTTL,
		Timeout:       timeout,
		LeaseWait:     leaseWait,
		PollInterval:  5 * time.Millisecond,
		MaxEntryBytes: testMaxEntryBytes,
		Now:           clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tier, log
}

// commandLog is a go-redis hook that keeps every command the client sent: its name (with NX for
// a SET that takes a lease), how long its context gave it, and its error. before, when set, is
// called with each command's name before the command is sent: a test can hold one there.
type commandLog struct {
	before   func(name string)
	mu       sync.Mutex
	commands []sentCommand
}

type sentCommand struct {
	name   string
	budget time.Duration // from the command's start to its context's deadline; 0 for none
	err    error
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := cmd.Name()
		if name == "set" && slices.ContainsFunc(cmd.Args(), func(arg any) bool { return arg == "nx" }) {
			name = "set nx"
		}
		if l.before != nil {
			l.before(name)
		}
		var budget time.Duration
		if deadline, ok := ctx.Deadline(); ok {
			budget = time.Until(deadline)
		}
		err := next(ctx, cmd)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.commands = append(l.commands, sentCommand{name: name, budget: budget, err: err})
		return err
	}
}

// take returns the commands sent since the last take, leaving out a new connection's handshake
// (HELLO, CLIENT).
func (l *commandLog) take() []sentCommand {
	l.mu.Lock()
	defer l.mu.Unlock()
	sent := slices.DeleteFunc(l.commands, func(c sentCommand) bool { return c.name == "hello" || c.name == "client" })
	l.commands = nil
	return sent
}

// names lists the commands' names.
func names(sent []sentCommand) []string {
	list := make([]string, len(sent))
	for i, c := range sent {
		list[i] = c.name
	}
	return list
}

// timedOut says whether err is a deadline running out: the context's, or the connection's.
func timedOut(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout())
}

// loadWithin runs Load, failing the test if it has not returned after stallBound.
func loadWithin(t *testing.T, tier *Tier, key string, fill func(context.Context) (string, error)) (string, error) {
	t.Helper()
	type result struct {
		v   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, _, err := tier.Load(t.Context(), key, fill)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(stallBound):
		t.Fatalf("Load(%q) still waiting after %s", key, stallBound)
		return "", nil
	}
}

// counter is a fill function that counts its calls and returns a new value each time.
type counter struct{ calls atomic.Int64 }

func (c *counter) fill(context.Context) (string, error) {
	return "v" + strconv.FormatInt(c.calls.Add(1), 10), nil
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	valid := Options{Client: client, TTL: time.Second, Timeout: time.Second, LeaseWait: time.Second, PollInterval: time.Millisecond, MaxEntryBytes: 1}
	for name, mutate := range map[string]func(*Options){
		"no client":     func(o *Options) { o.Client = nil },
		"zero TTL":      func(o *Options) { o.TTL = 0 },
		"zero timeout":  func(o *Options) { o.Timeout = 0 },
		"zero lease":    func(o *Options) { o.LeaseWait = 0 },
		"zero interval": func(o *Options) { o.PollInterval = 0 },
		"zero max size": func(o *Options) { o.MaxEntryBytes = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			opts := valid
			mutate(&opts)
			if _, err := New(opts); err == nil {
				t.Fatal("New accepted invalid options")
			}
		})
	}
	if _, err := NewClient("http://nope", "", time.Second); err == nil {
		t.Error("NewClient accepted a non-redis URL")
	}
	// The error names the URL without its password (net/url's own error quotes it whole).
	for _, raw := range []string{"http://u:s3cret@redis/0", "redis://u:s3cret@redis:x/0", "redis://u:s3cret@redis/db"} {
		_, err := NewClient(raw, "", time.Second)
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "redis") {
			t.Errorf("NewClient(%q) error = %v; want one naming the URL without its password", raw, err)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	for _, value := range []string{"", "plain", "with:colons:inside", "2025-01-02T03:04:05Z"} {
		gotAt, gotValue, problem := decode(encode(at, value))
		if problem != "" || !gotAt.Equal(at) || gotValue != value {
			t.Errorf("decode(encode(%q)) = %v, %q, %q", value, gotAt, gotValue, problem)
		}
	}
	for _, raw := range []string{"", "nocolon", "notanumber:v", ":v", "+1:v", "-1:v", "1e9:v", "99999999999999999999:v", "1:\xff"} {
		if _, _, problem := decode(raw); problem == "" {
			t.Errorf("decode(%q) accepted, want rejected", raw)
		}
	}
}

// Two replicas share one value and the time it was made; it expires with the TTL.
func TestReplicasShareValueUntilTTL(t *testing.T) {
	srv := redistest.Start(t)
	clock := newClock()
	a, b := replica(t, srv, clock), replica(t, srv, clock)
	var fills counter

	va, atA, err := a.Load(t.Context(), "time", fills.fill)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	vb, atB, err := b.Load(t.Context(), "time", fills.fill)
	if err != nil {
		t.Fatal(err)
	}
	if va != vb || !atA.Equal(atB) {
		t.Fatalf("replica B got %q made %v, want A's %q made %v", vb, atB, va, atA)
	}
	if n := fills.calls.Load(); n != 1 {
		t.Fatalf("fills = %d, want 1", n)
	}

	clock.Advance(testTTL - 3*time.Second) // now exactly TTL after the fill: expired
	vb2, _, err := b.Load(t.Context(), "time", fills.fill)
	if err != nil {
		t.Fatal(err)
	}
	if vb2 == va || fills.calls.Load() != 2 {
		t.Fatalf("after the TTL: value %q (was %q), fills %d; want a new value and 2 fills", vb2, va, fills.calls.Load())
	}
	if s := b.Stats(); s.Hits != 1 || s.Misses != 1 || s.Fills != 1 || s.Errors != 0 {
		t.Errorf("B stats = %+v, want 1 hit, 1 miss, 1 fill, 0 errors", s)
	}
}

// Many replicas missing one key at once: one fill for the whole fleet. As in
// the service, each replica's requests go through its in-process cache,
// which sends one of them on to the shared tier.
func TestFleetFillsOnceUnderConcurrentMisses(t *testing.T) {
	srv := redistest.Start(t)
	clock := newClock()
	var fills counter
	slowFill := func(ctx context.Context) (string, error) {
		time.Sleep(20 * time.Millisecond) // long enough for every replica to miss meanwhile
		return fills.fill(ctx)
	}
	const replicas, perReplica = 5, 20
	type tiers struct {
		l1 *cache.Cache[string, string]
		l2 *Tier
	}
	fleet := make([]tiers, replicas)
	for i := range fleet {
		l1, err := cache.New[string, string](cache.Options{MaxEntries: 10, TTL: testTTL, JanitorInterval: time.Second, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		fleet[i] = tiers{l1: l1, l2: replica(t, srv, clock)}
	}
	for round := range 3 {
		values := make(chan string, replicas*perReplica)
		var wg sync.WaitGroup
		for _, r := range fleet {
			for range perReplica {
				wg.Go(func() {
					v, _, _, err := r.l1.GetOrLoadStamped(t.Context(), "time", func(ctx context.Context) (string, time.Time, error) {
						return r.l2.Load(ctx, "time", slowFill)
					})
					if err != nil {
						t.Error(err)
					}
					values <- v
				})
			}
		}
		wg.Wait()
		close(values)
		distinct := map[string]bool{}
		for v := range values {
			distinct[v] = true
		}
		if len(distinct) != 1 || fills.calls.Load() != int64(round+1) {
			t.Fatalf("round %d: %d distinct values, %d fills in all; want 1 value and %d fills", round, len(distinct), fills.calls.Load(), round+1)
		}
		// One shared-tier lookup per replica and TTL (the in-process tier takes the rest), each
		// counted once: a replica that waited for another's fill counts a miss, not a hit too.
		var lookups uint64
		for _, r := range fleet {
			s := r.l2.Stats()
			lookups += s.Hits + s.Misses + s.LookupErrors
		}
		if want := uint64(replicas * (round + 1)); lookups != want {
			t.Fatalf("round %d: %d shared-tier lookups counted, want %d", round, lookups, want)
		}
		clock.Advance(testTTL)
	}
}

// A replica that missed, and took the lease only after another had filled the key and let its
// lease go, serves that fill: it does not fill the key a second time. (Under load, a replica
// held up between its GET and its SET NX for as long as another's whole fill did that.)
func TestLeaseTakenAfterAnotherFillServesThatFill(t *testing.T) {
	srv := redistest.Start(t)
	clock := newClock()
	a := replica(t, srv, clock)
	b, logB := loggedReplica(t, srv, clock, sharingTimeout, sharingTimeout)
	atLease, goOn := make(chan struct{}), make(chan struct{})
	logB.before = func(name string) {
		if name == "set nx" {
			close(atLease)
			<-goOn
		}
	}
	var fills counter
	type result struct {
		v   string
		err error
	}
	fromB := make(chan result, 1)
	go func() {
		v, _, err := b.Load(t.Context(), "time", fills.fill)
		fromB <- result{v, err}
	}()
	<-atLease // B has missed, and is about to ask for the lease
	va, _, err := a.Load(t.Context(), "time", fills.fill)
	if err != nil {
		t.Fatal(err)
	}
	close(goOn) // A has filled, stored and released its lease; B asks now
	got := <-fromB
	if got.err != nil || got.v != va || fills.calls.Load() != 1 {
		t.Fatalf("B got %q (%v) after A filled %q; fills %d; want A's value and 1 fill", got.v, got.err, va, fills.calls.Load())
	}
}

// Redis killed: answers keep coming, from local fills, each after one
// command (its GET, refused); restarted: the replicas share again.
func TestRedisKilledAndRestarted(t *testing.T) {
	srv := redistest.Start(t)
	clock := newClock()
	a, logA := loggedReplica(t, srv, clock, testTimeout, testLease)
	b, logB := loggedReplica(t, srv, clock, testTimeout, testLease)
	var fills counter
	if _, _, err := a.Load(t.Context(), "k", fills.fill); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	logA.take()
	for _, r := range []struct {
		tier *Tier
		log  *commandLog
	}{{a, logA}, {b, logB}} {
		before := r.tier.Stats()
		v, err := loadWithin(t, r.tier, "k2", fills.fill)
		sent := r.log.take()
		if err != nil || v == "" || !slices.Equal(names(sent), []string{"getrange"}) || sent[0].err == nil {
			t.Fatalf("with Redis down: Load = %q, %v after sending %v; want a value after one failed GETRANGE", v, err, names(sent))
		}
		if s := r.tier.Stats(); s.Errors != before.Errors+1 || s.LookupErrors != before.LookupErrors+1 {
			t.Fatalf("errors not counted: before %+v, after %+v", before, s)
		}
	}

	srv.Restart()
	polltest.Until(t, 10*time.Second, "replica A to reach Redis again", func() bool {
		before := a.Stats().Errors
		_, _, err := a.Load(t.Context(), "k3", fills.fill)
		return err == nil && a.Stats().Errors == before
	})
	va, _, _ := a.Load(t.Context(), "k3", fills.fill)
	vb, _, err := b.Load(t.Context(), "k3", fills.fill)
	if err != nil || vb != va {
		t.Fatalf("after the restart B got %q (%v), want A's %q", vb, err, va)
	}
}

// Redis that accepts but never answers (SIGSTOP) costs a lookup one command:
// its GET, given Timeout, times out, and the value is filled locally.
func TestPausedRedisBoundsTheWait(t *testing.T) {
	srv := redistest.Start(t)
	tier, log := loggedReplica(t, srv, newClock(), testTimeout, testLease)
	var fills counter
	if _, _, err := tier.Load(t.Context(), "warm", fills.fill); err != nil { // a pooled connection
		t.Fatal(err)
	}
	log.take()
	srv.Pause()
	defer srv.Resume()
	before := tier.Stats()
	start := time.Now()
	v, err := loadWithin(t, tier, "k", fills.fill)
	elapsed := time.Since(start)
	sent := log.take()
	if err != nil || v == "" || !slices.Equal(names(sent), []string{"getrange"}) {
		t.Fatalf("with Redis paused: Load = %q, %v after sending %v; want a value after one GET", v, err, names(sent))
	}
	if get := sent[0]; get.budget <= 0 || get.budget > testTimeout || !timedOut(get.err) {
		t.Errorf("the GET had %s and ended with %v; want at most Timeout (%s), and a timeout", get.budget, get.err, testTimeout)
	}
	// Only the real clock can say the deadline was kept; not before it, and long before stallBound.
	if elapsed < testTimeout {
		t.Errorf("Load returned after %s, before the GET's %s could run out", elapsed, testTimeout)
	}
	if s := tier.Stats(); s.LookupErrors != before.LookupErrors+1 || s.Errors != before.Errors+1 || s.Fills != before.Fills+1 {
		t.Errorf("stats went from %+v to %+v; want one more lookup error, error and fill", before, s)
	}
}

// A replica that took the lease and died: the others poll for LeaseWait, then fill.
func TestAbandonedLeaseDelaysAtMostLeaseWait(t *testing.T) {
	srv := redistest.Start(t)
	// A Redis timeout no poll misses: one that timed out would be filled locally at once
	// (correctly) and pass for a lease wait that ended early.
	tier, log := loggedReplica(t, srv, newClock(), sharingTimeout, testLease)
	other := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = other.Close() })
	if err := other.Set(t.Context(), "test:lease:k", "dead-replica", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	var fills counter
	start := time.Now()
	v, err := loadWithin(t, tier, "k", fills.fill)
	elapsed := time.Since(start)
	sent := names(log.take())
	if err != nil || v == "" || elapsed < testLease {
		t.Fatalf("Load = %q, %v after %s; want a value, not before LeaseWait (%s)", v, err, elapsed, testLease)
	}
	// The lookup, the lease it lost, at least one poll and at most one per PollInterval, the store.
	maxPolls := int(testLease/(5*time.Millisecond)) + 1
	polls := len(sent) - 3
	if len(sent) < 4 || !slices.Equal(sent[:2], []string{"getrange", "set nx"}) || sent[len(sent)-1] != "set" ||
		slices.ContainsFunc(sent[2:len(sent)-1], func(name string) bool { return name != "getrange" }) || polls > maxPolls {
		t.Errorf("commands sent: %v; want getrange, set nx, 1 to %d polls (getrange) and set", sent, maxPolls)
	}
	if stored, _ := other.Get(t.Context(), "test:k").Result(); !strings.HasSuffix(stored, ":"+v) {
		t.Errorf("the late fill was not shared: Redis holds %q", stored)
	}
}

func TestFillErrorIsReturnedAndNotStored(t *testing.T) {
	srv := redistest.Start(t)
	tier := replica(t, srv, newClock())
	boom := errors.New("boom")
	if _, _, err := tier.Load(t.Context(), "k", func(context.Context) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	var fills counter
	if v, _, err := tier.Load(t.Context(), "k", fills.fill); err != nil || v != "v1" {
		t.Fatalf("after a failed fill: %q, %v; want a fresh fill v1", v, err)
	}
}

// Redis at its maxmemory with allkeys-lru (deploy/redis) evicts and keeps
// accepting writes: the tier goes on sharing.
func TestRedisPastMaxmemoryKeepsSharing(t *testing.T) {
	// Well above an empty server's own use (about 1 MB for Redis 8), as the stack's 64 MB is.
	srv := redistest.Start(t, "--maxmemory", "16mb", "--maxmemory-policy", "allkeys-lru")
	clock := newClock()
	a, b := replica(t, srv, clock), replica(t, srv, clock)
	filler := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = filler.Close() })
	junk := strings.Repeat("x", 4096)
	pipe := filler.Pipeline()
	const written = 8000
	for i := range written { // 32 MB of values into 16 MB
		pipe.Set(t.Context(), fmt.Sprintf("junk:%d", i), junk, 0)
	}
	if _, err := pipe.Exec(t.Context()); err != nil {
		t.Fatalf("filling Redis: %v", err)
	}
	if n := filler.DBSize(t.Context()).Val(); n >= written {
		t.Fatalf("Redis holds all %d keys: maxmemory not in force", n)
	}
	if evicted := infoField(t, filler, "stats", "evicted_keys"); evicted == "0" {
		t.Fatal("Redis evicted nothing")
	}
	// LRU's clock ticks once a second, and a full Redis evicts for each command that may
	// write, a release's script included: with the junk as new as the key the replicas share,
	// the key itself was taken now and then (1 run in 160 idle, 1 in 20 under CPU hogs). Real
	// traffic's keys differ in age, so the replicas start once the junk is older to that clock
	// and Redis is back within maxmemory.
	polltest.Until(t, time.Minute, "the junk to age and Redis to finish evicting", func() bool {
		junk := filler.RandomKey(t.Context()).Val()
		used := infoInt(t, filler, "memory", "used_memory") - infoInt(t, filler, "memory", "mem_not_counted_for_evict")
		return filler.ObjectIdleTime(t.Context(), junk).Val() >= time.Second &&
			used <= infoInt(t, filler, "memory", "maxmemory")
	})
	var fills counter
	va, _, err := a.Load(t.Context(), "time", fills.fill)
	if err != nil {
		t.Fatal(err)
	}
	vb, _, err := b.Load(t.Context(), "time", fills.fill)
	if err != nil || vb != va || a.Stats().Errors+b.Stats().Errors != 0 {
		t.Fatalf("past maxmemory: A %q, B %q (%v), errors %d+%d; want one shared value, no errors", va, vb, err, a.Stats().Errors, b.Stats().Errors)
	}
}

// The two tiers together, as the service runs them: each replica's
// in-process cache in front of the shared tier. Every replica answers with
// the same value and the same made-at time (so the same Age), and the fleet
// fills once per TTL.
func TestTwoTiersAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	clock := newClock()
	type tiers struct {
		l1 *cache.Cache[string, string]
		l2 *Tier
	}
	fleet := make([]tiers, 3)
	for i := range fleet {
		l1, err := cache.New[string, string](cache.Options{MaxEntries: 10, TTL: testTTL, JanitorInterval: time.Second, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		fleet[i] = tiers{l1: l1, l2: replica(t, srv, clock)}
	}
	var fills counter
	get := func(r tiers) (string, time.Time) {
		v, at, _, err := r.l1.GetOrLoadStamped(t.Context(), "time", func(ctx context.Context) (string, time.Time, error) {
			return r.l2.Load(ctx, "time", fills.fill)
		})
		if err != nil {
			t.Fatal(err)
		}
		return v, at
	}
	for ttl := range 3 {
		first, firstAt := get(fleet[0])
		for step := range 4 {
			clock.Advance(2 * time.Second)
			for i, r := range fleet {
				if v, at := get(r); v != first || !at.Equal(firstAt) {
					t.Fatalf("TTL %d step %d: replica %d answered %q made %v, want %q made %v", ttl, step, i, v, at, first, firstAt)
				}
			}
		}
		if got := fills.calls.Load(); got != int64(ttl+1) {
			t.Fatalf("after %d TTLs: %d fills, want %d", ttl+1, got, ttl+1)
		}
		clock.Advance(2 * time.Second) // 10 s since the fill: every tier expires it
	}
}

func infoField(t *testing.T, c *redis.Client, section, field string) string {
	t.Helper()
	info, err := c.Info(t.Context(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return ""
}

func infoInt(t *testing.T, c *redis.Client, section, field string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(infoField(t, c, section, field), 10, 64)
	if err != nil {
		t.Fatalf("INFO %s %s: %v", section, field, err)
	}
	return n
}

// What another writer may leave under a key, and the tier's answer: a miss
// (counted as invalid) whose fill overwrites it, never a value served or kept
// by the in-process tier in front; an oversized value is not even read whole.
func TestInvalidEntriesAreMissesAndOverwritten(t *testing.T) {
	srv := redistest.Start(t)
	plain := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = plain.Close() })
	stamp := func(at time.Time) string { return strconv.FormatInt(at.UnixNano(), 10) }
	huge := strings.Repeat("x", 8<<20)
	for _, tc := range []struct {
		name  string
		plant func(ctx context.Context, key string, now time.Time) error
	}{
		{"birth time an hour ahead", func(ctx context.Context, key string, now time.Time) error {
			return plain.Set(ctx, key, stamp(now.Add(time.Hour))+":planted", 0).Err()
		}},
		{"birth time past the skew", func(ctx context.Context, key string, now time.Time) error {
			return plain.Set(ctx, key, stamp(now.Add(MaxClockSkew+time.Millisecond))+":planted", 0).Err()
		}},
		{"8 MiB value", func(ctx context.Context, key string, now time.Time) error {
			return plain.Set(ctx, key, stamp(now)+":"+huge, 0).Err()
		}},
		{"one byte over the bound", func(ctx context.Context, key string, now time.Time) error {
			s := stamp(now) + ":"
			return plain.Set(ctx, key, s+strings.Repeat("x", testMaxEntryBytes+1-len(s)), 0).Err()
		}},
		{"no birth time", func(ctx context.Context, key string, _ time.Time) error {
			return plain.Set(ctx, key, "planted", 0).Err()
		}},
		{"birth time not a number", func(ctx context.Context, key string, _ time.Time) error {
			return plain.Set(ctx, key, "soon:planted", 0).Err()
		}},
		{"empty birth time", func(ctx context.Context, key string, _ time.Time) error {
			return plain.Set(ctx, key, ":planted", 0).Err()
		}},
		{"json instead of the encoding", func(ctx context.Context, key string, _ time.Time) error {
			return plain.Set(ctx, key, `{"value": "planted", "stored_at": 1}`, 0).Err()
		}},
		{"value not UTF-8", func(ctx context.Context, key string, now time.Time) error {
			return plain.Set(ctx, key, stamp(now)+":planted\xff\xfe", 0).Err()
		}},
		{"a list, not a string", func(ctx context.Context, key string, _ time.Time) error {
			return plain.RPush(ctx, key, "planted").Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := plain.FlushAll(t.Context()).Err(); err != nil {
				t.Fatal(err)
			}
			clock := newClock()
			a, b := replica(t, srv, clock), replica(t, srv, clock)
			l1, err := cache.New[string, string](cache.Options{MaxEntries: 10, TTL: testTTL, JanitorInterval: time.Second, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.plant(t.Context(), "test:time", clock.Now()); err != nil {
				t.Fatal(err)
			}
			sentBefore := infoField(t, plain, "stats", "total_net_output_bytes")
			var fills counter
			v, at, _, err := l1.GetOrLoadStamped(t.Context(), "time", func(ctx context.Context) (string, time.Time, error) {
				return a.Load(ctx, "time", fills.fill)
			})
			if err != nil || v != "v1" || !at.Equal(clock.Now()) {
				t.Fatalf("Load = %.40q made %v, %v; want a fresh fill v1 made now (%v)", v, at, err, clock.Now())
			}
			if s := a.Stats(); s.Invalid != 1 || s.Misses != 1 || s.Hits != 0 || s.Errors != 0 || s.Fills != 1 {
				t.Errorf("stats = %+v, want 1 invalid miss, 1 fill, no hit, no error", s)
			}
			sent := parseInt(t, infoField(t, plain, "stats", "total_net_output_bytes")) - parseInt(t, sentBefore)
			if sent > 1<<20 { // the 8 MiB value must not be read; the other replies are a few kB
				t.Errorf("Redis sent %d bytes during the lookup: the entry was read past its bound", sent)
			}
			// Overwritten: the other replica finds the fill, as a hit.
			if v, _, err := b.Load(t.Context(), "time", fills.fill); err != nil || v != "v1" || fills.calls.Load() != 1 {
				t.Fatalf("replica B: %.40q, %v, %d fills; want the shared v1, 1 fill", v, err, fills.calls.Load())
			}
			if s := b.Stats(); s.Hits != 1 || s.Invalid != 0 {
				t.Errorf("replica B stats = %+v, want 1 hit", s)
			}
		})
	}
}

// A birth time a little ahead (another host's clock, within MaxClockSkew) is taken.
func TestEntryMadeWithinTheSkewIsAHit(t *testing.T) {
	srv := redistest.Start(t)
	plain := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = plain.Close() })
	clock := newClock()
	ahead := clock.Now().Add(MaxClockSkew / 2)
	if err := plain.Set(t.Context(), "test:time", encode(ahead, "from-a-fast-clock"), 0).Err(); err != nil {
		t.Fatal(err)
	}
	tier := replica(t, srv, clock)
	var fills counter
	v, at, err := tier.Load(t.Context(), "time", fills.fill)
	if err != nil || v != "from-a-fast-clock" || !at.Equal(ahead) || fills.calls.Load() != 0 {
		t.Fatalf("Load = %q made %v, %v (%d fills); want the stored value made %v", v, at, err, fills.calls.Load(), ahead)
	}
	if s := tier.Stats(); s.Hits != 1 || s.Invalid != 0 {
		t.Errorf("stats = %+v, want 1 hit", s)
	}
}

func parseInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
