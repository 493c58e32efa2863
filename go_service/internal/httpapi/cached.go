package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"cacheplatform/go_service/internal/cache"
	"cacheplatform/go_service/internal/metrics"
	"cacheplatform/go_service/internal/sharedcache"
)

const staticText = "Hello from go_service. This text is served from the in-process cache."

// cachedContent serves routes whose value is loaded once per TTL.
//
// Two tiers: the in-process cache, and behind it, when configured, the tier
// every replica shares (Redis). A value from the shared tier keeps the time
// it was made, so Age is that value's age whichever replica answers.
//
// The cache holds the route's underlying value (key: the route name), not a
// rendered response: text and JSON are rendered per request from one entry,
// so both representations of /time show the same instant within a TTL and
// a client switching Accept headers cannot cause a second load.
type cachedContent struct {
	cache  *cache.Cache[string, string]
	shared *sharedcache.Tier // nil: in-process only
	fills  *metrics.CacheFills
	now    func() time.Time
	logger *slog.Logger
}

// cachedKeys are the cache keys of the cached routes, the values of
// cache_fills_total's key label.
var cachedKeys = []string{"static-text", "time"}

func (c *cachedContent) handler(key, jsonField string, load func(context.Context) (string, error)) http.Handler {
	fill := func(ctx context.Context) (string, error) {
		c.fills.Inc(key)
		c.logger.LogAttrs(ctx, slog.LevelInfo, "cache fill", slog.String("key", key))
		return load(ctx)
	}
	loadStamped := func(ctx context.Context) (string, time.Time, error) {
		if c.shared != nil {
			return c.shared.Load(ctx, key, fill)
		}
		v, err := fill(ctx)
		return v, c.now(), err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		value, storedAt, hit, err := c.cache.GetOrLoadStamped(r.Context(), key, loadStamped)
		if err != nil {
			// The loaders cannot fail, so this is the request's own context
			// ending: the client is gone or the server is out of time.
			writeText(w, http.StatusServiceUnavailable, "unavailable\n")
			return
		}

		h := w.Header()
		h.Set("X-Cache", cacheResult(hit))
		h.Set("Age", strconv.FormatInt(ageSeconds(c.now(), storedAt), 10))
		h.Set("Vary", "Accept") // shared caches in front must keep text and JSON apart
		if prefersJSON(r.Header.Values("Accept")) {
			writeJSONField(w, jsonField, value)
			return
		}
		writeText(w, http.StatusOK, value+"\n")
	})
}

func cacheResult(hit bool) string {
	if hit {
		return "HIT"
	}
	return "MISS"
}

// ageSeconds is the HTTP Age of a value stored at storedAt: whole seconds,
// never negative.
func ageSeconds(now, storedAt time.Time) int64 {
	return max(0, int64(now.Sub(storedAt)/time.Second))
}

func loadStaticText(context.Context) (string, error) {
	return staticText, nil
}

func timeLoader(now func() time.Time) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		return now().UTC().Format(time.RFC3339Nano), nil
	}
}
