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
//
// Nor is a value in Redis trusted: whatever another writer left under a key
// (a value too large, not of this encoding, not UTF-8, not a string, or
// stamped more than MaxClockSkew ahead) is rejected, counted in
// Stats.Invalid, and treated as a miss whose fill overwrites it. A lookup
// reads at most MaxEntryBytes+1 bytes (GETRANGE), so an oversized value is
// never loaded; a value stamped in the future is never kept past its TTL
// by the in-process tier in front.
package sharedcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"cacheplatform/go_service/internal/redact"
)

// MaxClockSkew is how far ahead of this replica's clock a stored value's
// birth time may be and still be taken: the replicas' clocks differ a
// little. A value made further ahead would look fresh (and be kept by every
// in-process tier) until then, so it is rejected.
const MaxClockSkew = time.Second

// Options configures a Tier. TTL, Timeout, LeaseWait, PollInterval and MaxEntryBytes must be positive.
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
	// MaxEntryBytes bounds a stored entry (birth time and value): a lookup
	// reads no more than one byte past it, and a larger entry is invalid.
	MaxEntryBytes int
	// Now is the clock values are stamped and aged with; nil means
	// time.Now. Tests inject a fake clock to expire values without waiting.
	Now func() time.Time
	// Logger receives a warning per invalid entry found; nil discards them.
	Logger *slog.Logger
}

// Stats is a snapshot of the tier's counters.
type Stats struct {
	Hits         uint64 // lookups that found a fresh shared value
	Misses       uint64 // lookups that found none (then served by waiting for another replica's fill, or by filling)
	LookupErrors uint64 // lookups whose GET failed or timed out: the value was filled locally
	Errors       uint64 // Redis commands (GET, lease, store) that failed or timed out
	Fills        uint64 // values this replica computed (with the lease, or alone after an error or a lease wait)
	Invalid      uint64 // lookups that found an entry this tier did not write (counted among the misses)
}

// Tier is a Redis-backed shared cache; safe for concurrent use.
type Tier struct {
	client                              *redis.Client
	prefix                              string
	ttl, timeout, leaseWait, pollPeriod time.Duration
	maxEntryBytes                       int
	now                                 func() time.Time
	logger                              *slog.Logger

	hits, misses, lookupErrs, errs, fills, invalid atomic.Uint64
}

// NewClient returns a go-redis client for url (redis://[user@]host:port/db)
// whose every command gives up after timeout and is not retried: a slow
// Redis delays a request by at most timeout per command, never a multiple of
// it. A non-empty password replaces the URL's (the ACL user's password, kept
// out of the URL and so out of the process' environment).
func NewClient(url, password string, timeout time.Duration) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		// net/url's errors quote the whole URL: keep only what went wrong.
		var urlErr *neturl.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, fmt.Errorf("sharedcache: REDIS_URL %q: %w", redact.URL(url), err)
	}
	if password != "" {
		opts.Password = password
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
	case opts.MaxEntryBytes <= 0:
		return nil, fmt.Errorf("sharedcache: MaxEntryBytes must be positive, got %d", opts.MaxEntryBytes)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Tier{
		client:        opts.Client,
		prefix:        opts.Prefix,
		ttl:           opts.TTL,
		timeout:       opts.Timeout,
		leaseWait:     opts.LeaseWait,
		pollPeriod:    opts.PollInterval,
		maxEntryBytes: opts.MaxEntryBytes,
		now:           now,
		logger:        logger,
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
		Invalid:      t.invalid.Load(),
	}
}

// Load returns the shared value under key and when it was made. Without a
// fresh one it fills the key: through fill under the fleet's lease (unless the
// value came meanwhile), or after waiting up to LeaseWait for the replica
// holding it. An error from fill is
// returned as is (and nothing is stored); Redis' own errors never are.
func (t *Tier) Load(ctx context.Context, key string, fill func(context.Context) (string, error)) (value string, madeAt time.Time, err error) {
	valueKey := t.prefix + key
	v, at, found, problem, err := t.get(ctx, valueKey)
	switch {
	case err != nil:
		t.lookupErrs.Add(1)
		return t.fillAlone(ctx, fill)
	case found:
		t.hits.Add(1)
		return v, at, nil
	}
	t.misses.Add(1)
	if problem != "" { // a miss like any other: the fill below overwrites it
		t.invalid.Add(1)
		t.logger.LogAttrs(ctx, slog.LevelWarn, "invalid shared cache entry", slog.String("key", valueKey), slog.String("problem", problem))
	}

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
		if v, at, found, _, err := t.get(ctx, valueKey); err == nil && found {
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
		// An invalid entry is the one the lookup found (counted then), until the filler overwrites it.
		v, at, found, _, err := t.get(ctx, valueKey)
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

// get reads a value; found is false when there is none, it is older than
// the TTL (by this replica's clock, which tests can fake) or it is invalid,
// and then problem says what makes it invalid. It reads at most
// MaxEntryBytes+1 bytes of the entry.
func (t *Tier) get(ctx context.Context, valueKey string) (value string, madeAt time.Time, found bool, problem string, err error) {
	wrongType := false
	raw, err := command(ctx, t, func(ctx context.Context) (string, error) {
		// GETRANGE answers "" for a missing key, as for an empty value: both are misses.
		s, err := t.client.GetRange(ctx, valueKey, 0, int64(t.maxEntryBytes)).Result()
		if err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") {
			// Another writer's list or hash under our key: Redis answers, the entry is invalid.
			wrongType = true
			return "", nil
		}
		return s, err
	})
	switch {
	case err != nil:
		return "", time.Time{}, false, "", err
	case wrongType:
		return "", time.Time{}, false, "not a string", nil
	case raw == "":
		return "", time.Time{}, false, "", nil
	case len(raw) > t.maxEntryBytes:
		return "", time.Time{}, false, fmt.Sprintf("larger than %d bytes", t.maxEntryBytes), nil
	}
	madeAt, value, problem = decode(raw)
	now := t.now()
	switch {
	case problem != "":
		return "", time.Time{}, false, problem, nil
	case madeAt.Sub(now) > MaxClockSkew:
		return "", time.Time{}, false, fmt.Sprintf("made %s in the future", madeAt.Sub(now).Round(time.Millisecond)), nil
	case now.Sub(madeAt) >= t.ttl:
		return "", time.Time{}, false, "", nil
	}
	return value, madeAt, true, "", nil
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

// decode reverses encode; problem says why raw is not what encode produced
// ("" when it is): a stamp of decimal digits, ":", a UTF-8 value.
func decode(raw string) (madeAt time.Time, value, problem string) {
	stamp, value, ok := strings.Cut(raw, ":")
	if !ok {
		return time.Time{}, "", "no birth time"
	}
	if stamp == "" || strings.Trim(stamp, "0123456789") != "" {
		return time.Time{}, "", "birth time not a number"
	}
	nanos, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return time.Time{}, "", "birth time out of range"
	}
	if !utf8.ValidString(value) {
		return time.Time{}, "", "value not UTF-8"
	}
	return time.Unix(0, nanos), value, ""
}

// newToken names one lease holder: 128 random bits.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
