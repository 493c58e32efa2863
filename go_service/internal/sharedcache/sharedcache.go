// Package sharedcache is the cache tier every replica of the service shares:
// values in Redis, each stored with the time it was made, so that within the
// TTL every replica answers with the same value and the same HTTP Age.
//
// It sits behind the in-process cache (package cache, the first tier), which
// calls Load on a miss. Load answers from Redis when it holds a fresh value;
// otherwise one replica of the fleet takes a short lease (SET NX PX) and
// fills the key while the others poll for the value it stores. The fleet so
// fills a key once per TTL, not once per replica.
//
// Redis is an optimisation, never a dependency: every command is bounded by
// Options.Timeout, and when one fails or times out Load fills the value
// locally (counted in Stats.Errors), so a request is never failed by Redis.
// Unreachable or stalled, Redis costs a lookup one Timeout (the GET fails,
// nothing else is tried). Answering, it costs at most LeaseWait more (while
// another replica fills) and one Timeout per command: the GET, the lease,
// the GET again under it, the store and the lease's release, six commands at
// most.
package sharedcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures a Tier. TTL, Timeout, LeaseWait and PollInterval must be positive.
type Options struct {
	// Client is the Redis connection pool. NewClient builds one whose
	// dial, read and write timeouts are Timeout and which never retries.
	Client *redis.Client
	// Prefix namespaces the keys (values under Prefix+key, leases under
	// Prefix+"lease:"+key), so that other users of the same Redis, or a
	// later incompatible encoding, never read these entries.
	Prefix string
	// TTL is how long a shared value is served after it was made.
	TTL time.Duration
	// Timeout bounds each Redis command.
	Timeout time.Duration
	// LeaseWait is how long the lease on a fill lasts, and so how long the
	// other replicas poll for its value before filling the key themselves
	// (a filler that died or stalls delays them at most this long).
	LeaseWait time.Duration
	// PollInterval is how often a replica waiting on another's fill looks
	// for the value.
	PollInterval time.Duration
	// Now is the clock values are stamped and aged with; nil means
	// time.Now. Tests inject a fake clock to expire values without waiting.
	Now func() time.Time
}

// Stats is a snapshot of the tier's counters.
type Stats struct {
	Hits         uint64 // lookups that found a fresh shared value
	Misses       uint64 // lookups that found none (then served by waiting for another replica's fill, or by filling)
	LookupErrors uint64 // lookups whose GET failed or timed out: the value was filled locally
	Errors       uint64 // Redis commands (GET, lease, store) that failed or timed out
	Fills        uint64 // values this replica computed (with the lease, or alone after an error or a lease wait)
}

// Tier is a Redis-backed shared cache; safe for concurrent use.
type Tier struct {
	client                              *redis.Client
	prefix                              string
	ttl, timeout, leaseWait, pollPeriod time.Duration
	now                                 func() time.Time

	hits, misses, lookupErrs, errs, fills atomic.Uint64
}

// NewClient returns a go-redis client for url (redis://host:port/db) whose
// every command gives up after timeout and is not retried: a slow Redis
// delays a request by at most timeout per command, never a multiple of it.
func NewClient(url string, timeout time.Duration) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("sharedcache: REDIS_URL %q: %w", url, err)
	}
	opts.DialTimeout = timeout
	opts.ReadTimeout = timeout
	opts.WriteTimeout = timeout
	opts.PoolTimeout = timeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1   // go-redis: -1 disables retries (0 would mean its default of 3)
	opts.DialerRetries = 1 // one dial per attempt (default 5, 100 ms apart)
	// A cache needs none of the connection handshake's optional extras; without them the first
	// command on a new connection costs one round trip less.
	opts.DisableIdentity = true
	return redis.NewClient(opts), nil
}

// SetLogger sends go-redis' own log lines (failed dials, pool trouble) to
// logger at level warn, as JSON like the service's other lines, instead of
// the standard library's log package. It sets a process-wide hook of go-redis.
func SetLogger(logger *slog.Logger) {
	redis.SetLogger(redisLogger{logger})
}

type redisLogger struct{ logger *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.logger.WarnContext(ctx, "redis client", slog.String("message", fmt.Sprintf(format, v...)))
}

// New returns a Tier configured by opts.
func New(opts Options) (*Tier, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("sharedcache: Client is nil")
	case opts.TTL <= 0:
		return nil, fmt.Errorf("sharedcache: TTL must be positive, got %s", opts.TTL)
	case opts.Timeout <= 0:
		return nil, fmt.Errorf("sharedcache: Timeout must be positive, got %s", opts.Timeout)
	case opts.LeaseWait <= 0:
		return nil, fmt.Errorf("sharedcache: LeaseWait must be positive, got %s", opts.LeaseWait)
	case opts.PollInterval <= 0:
		return nil, fmt.Errorf("sharedcache: PollInterval must be positive, got %s", opts.PollInterval)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Tier{
		client:     opts.Client,
		prefix:     opts.Prefix,
		ttl:        opts.TTL,
		timeout:    opts.Timeout,
		leaseWait:  opts.LeaseWait,
		pollPeriod: opts.PollInterval,
		now:        now,
	}, nil
}

// Stats returns a snapshot of the counters.
func (t *Tier) Stats() Stats {
	return Stats{
		Hits:         t.hits.Load(),
		Misses:       t.misses.Load(),
		LookupErrors: t.lookupErrs.Load(),
		Errors:       t.errs.Load(),
		Fills:        t.fills.Load(),
	}
}

// Load returns the shared value under key and when it was made. Without a
// fresh one it fills the key: through fill under the fleet's lease (unless the
// value came meanwhile), or after waiting up to LeaseWait for the replica
// holding it. An error from fill is
// returned as is (and nothing is stored); Redis' own errors never are.
func (t *Tier) Load(ctx context.Context, key string, fill func(context.Context) (string, error)) (value string, madeAt time.Time, err error) {
	valueKey := t.prefix + key
	v, at, found, err := t.get(ctx, valueKey)
	switch {
	case err != nil:
		t.lookupErrs.Add(1)
		return t.fillAlone(ctx, fill)
	case found:
		t.hits.Add(1)
		return v, at, nil
	}
	t.misses.Add(1)

	leaseKey := t.prefix + "lease:" + key
	token := newToken()
	leased, err := command(ctx, t, func(ctx context.Context) (bool, error) {
		return t.client.SetNX(ctx, leaseKey, token, t.leaseWait).Result()
	})
	if err != nil {
		return t.fillAlone(ctx, fill)
	}
	if leased {
		defer t.release(ctx, leaseKey, token)
		// Another replica may have filled the key and let its lease go since our GET (a replica
		// held up that long under load): its value is the fleet's, and a fill now a second one.
		if v, at, found, err := t.get(ctx, valueKey); err == nil && found {
			return v, at, nil
		}
		return t.fillShared(ctx, valueKey, fill)
	}
	return t.awaitFill(ctx, valueKey, fill)
}

// awaitFill polls for the value another replica is filling under its
// lease. If none appears within LeaseWait, or Redis fails, this replica
// fills the key itself.
func (t *Tier) awaitFill(ctx context.Context, valueKey string, fill func(context.Context) (string, error)) (string, time.Time, error) {
	deadline := time.Now().Add(t.leaseWait)
	ticker := time.NewTicker(t.pollPeriod)
	defer ticker.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return "", time.Time{}, context.Cause(ctx)
		case <-ticker.C:
		}
		v, at, found, err := t.get(ctx, valueKey)
		if err != nil {
			return t.fillAlone(ctx, fill)
		}
		if found { // counted as the miss it began as: hits + misses + lookup errors = lookups
			return v, at, nil
		}
	}
	return t.fillShared(ctx, valueKey, fill)
}

// fillShared computes the value and stores it for the fleet. A failed
// store is counted, and the value still served.
func (t *Tier) fillShared(ctx context.Context, valueKey string, fill func(context.Context) (string, error)) (string, time.Time, error) {
	v, at, err := t.fillAlone(ctx, fill)
	if err != nil {
		return "", time.Time{}, err
	}
	_, _ = command(ctx, t, func(ctx context.Context) (string, error) {
		return t.client.Set(ctx, valueKey, encode(at, v), t.ttl).Result()
	})
	return v, at, nil
}

// fillAlone computes the value without sharing it.
func (t *Tier) fillAlone(ctx context.Context, fill func(context.Context) (string, error)) (string, time.Time, error) {
	t.fills.Add(1)
	v, err := fill(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	return v, t.now(), nil
}

// releaseScript deletes the lease only if it still holds our token: a lease
// that expired and was taken by another replica is that replica's.
var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

func (t *Tier) release(ctx context.Context, leaseKey, token string) {
	_, _ = command(ctx, t, func(ctx context.Context) (any, error) {
		return releaseScript.Run(ctx, t.client, []string{leaseKey}, token).Result()
	})
}

// get reads a value; found is false when there is none or it is older
// than the TTL (by this replica's clock, which tests can fake).
func (t *Tier) get(ctx context.Context, valueKey string) (value string, madeAt time.Time, found bool, err error) {
	raw, err := command(ctx, t, func(ctx context.Context) (string, error) {
		s, err := t.client.Get(ctx, valueKey).Result()
		if errors.Is(err, redis.Nil) {
			return "", nil
		}
		return s, err
	})
	if err != nil || raw == "" {
		return "", time.Time{}, false, err
	}
	madeAt, value, ok := decode(raw)
	if !ok || t.now().Sub(madeAt) >= t.ttl {
		return "", time.Time{}, false, nil
	}
	return value, madeAt, true, nil
}

// command runs one Redis command within Timeout, counting its failure.
func command[T any](ctx context.Context, t *Tier, do func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	v, err := do(ctx)
	if err != nil {
		t.errs.Add(1)
	}
	return v, err
}

// encode is the stored form of a value made at madeAt: "<unix nanoseconds>:<value>".
func encode(madeAt time.Time, value string) string {
	return strconv.FormatInt(madeAt.UnixNano(), 10) + ":" + value
}

// decode reverses encode; ok is false for anything encode did not produce.
func decode(raw string) (madeAt time.Time, value string, ok bool) {
	stamp, value, ok := strings.Cut(raw, ":")
	if !ok {
		return time.Time{}, "", false
	}
	nanos, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(0, nanos), value, true
}

// newToken names one lease holder: 128 random bits.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
