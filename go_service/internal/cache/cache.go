// Package cache is a bounded, in-memory LRU cache with a per-cache TTL and
// stampede protection.
//
// It is hand-written rather than imported because the service needs exactly
// four things that fit in one small file: a size bound, a TTL, the time an
// entry was stored (for the HTTP Age header) and one loader call per key on
// concurrent misses. bench_test.go compares it against otter.
//
// Eviction is LRU: with a single TTL every entry already expires in insertion
// order, so the size bound only matters when the key space is larger than
// MaxEntries, and then the keys worth keeping are the ones still being read.
//
// One sync.Mutex guards a map (O(1) lookup) and a container/list (O(1)
// recency order). A sync.RWMutex would buy nothing: every hit moves its
// entry to the front of the list, so reads are writes too. Holding the one
// lock for every map or list change also rules out deleting an expired entry
// under a read lock. The counters are atomics so a metrics scrape never
// waits on the lock to read them.
package cache

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Options configures a Cache. MaxEntries, TTL and JanitorInterval must be positive.
type Options struct {
	// MaxEntries bounds the number of stored entries; storing one more
	// evicts the least recently used.
	MaxEntries int
	// TTL is how long an entry is served after it was stored.
	TTL time.Duration
	// JanitorInterval is how often Run sweeps out expired entries. Without
	// the janitor, expired entries are still never served, but keys that are
	// not read again would hold memory until evicted.
	JanitorInterval time.Duration
	// Now is the clock used for storing and expiring entries; nil means
	// time.Now. Tests inject a fake clock so they never wait for a TTL.
	Now func() time.Time
}

// Stats is a snapshot of the cache's counters.
type Stats struct {
	Hits        uint64 // lookups answered from the cache
	Misses      uint64 // lookups that found nothing fresh
	Evictions   uint64 // entries removed to stay within MaxEntries
	Expirations uint64 // entries removed because their TTL had passed
	Entries     int    // entries currently stored, fresh or not yet swept
}

// Cache is safe for concurrent use. Create it with New.
type Cache[K comparable, V any] struct {
	maxEntries      int
	ttl             time.Duration
	janitorInterval time.Duration
	now             func() time.Time

	mu      sync.Mutex
	entries map[K]*list.Element // values are *entry[K, V]
	recency *list.List          // front is the most recently used

	loads singleflight.Group

	hits, misses, evictions, expirations atomic.Uint64
}

type entry[K comparable, V any] struct {
	key      K
	value    V
	storedAt time.Time
}

// New returns an empty cache configured by opts.
func New[K comparable, V any](opts Options) (*Cache[K, V], error) {
	switch {
	case opts.MaxEntries <= 0:
		return nil, fmt.Errorf("cache: MaxEntries must be positive, got %d", opts.MaxEntries)
	case opts.TTL <= 0:
		return nil, fmt.Errorf("cache: TTL must be positive, got %s", opts.TTL)
	case opts.JanitorInterval <= 0:
		return nil, fmt.Errorf("cache: JanitorInterval must be positive, got %s", opts.JanitorInterval)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Cache[K, V]{
		maxEntries:      opts.MaxEntries,
		ttl:             opts.TTL,
		janitorInterval: opts.JanitorInterval,
		now:             now,
		entries:         make(map[K]*list.Element),
		recency:         list.New(),
	}, nil
}

// Get returns the fresh value stored under key and when it was stored.
func (c *Cache[K, V]) Get(key K) (value V, storedAt time.Time, ok bool) {
	e, ok := c.lookup(key)
	c.count(ok)
	return e.value, e.storedAt, ok
}

// Set stores value under key, replacing any previous value.
func (c *Cache[K, V]) Set(key K, value V) {
	c.store(key, value, c.now())
}

// GetOrLoad returns the fresh value stored under key or, on a miss, stores
// and returns what load produces. Concurrent misses on one key share a single
// load call. hit reports whether the value came from the cache without
// waiting for a load. A load error is returned to every waiter and is not
// cached.
//
// The load is shared, so it runs with a context that is never cancelled:
// otherwise the first caller giving up would fail everyone waiting with it.
// Each caller still stops waiting when its own ctx is done, and a caller whose
// ctx is done when the load returns gets ctx's cause, not the value. load must
// therefore bound its own running time.
func (c *Cache[K, V]) GetOrLoad(ctx context.Context, key K, load func(context.Context) (V, error)) (value V, storedAt time.Time, hit bool, err error) {
	return c.GetOrLoadStamped(ctx, key, func(ctx context.Context) (V, time.Time, error) {
		v, err := load(ctx)
		return v, c.now(), err
	})
}

// GetOrLoadStamped is GetOrLoad for a load that reports when its value was
// made, such as a copy of a value another process stored earlier (the
// shared tier of package sharedcache). The entry's age, and so its expiry,
// counts from that time rather than from now: a copy never outlives the
// original by more than the difference of the two TTLs.
func (c *Cache[K, V]) GetOrLoadStamped(ctx context.Context, key K, load func(context.Context) (V, time.Time, error)) (value V, storedAt time.Time, hit bool, err error) {
	if e, ok := c.lookup(key); ok {
		c.count(true)
		return e.value, e.storedAt, true, nil
	}
	c.count(false)

	loaded := c.loads.DoChan(flightKey(key), func() (any, error) {
		// A load that finished between our lookup and joining the flight
		// has already stored the value.
		if e, ok := c.lookup(key); ok {
			return e, nil
		}
		v, at, err := load(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		return c.store(key, v, at), nil
	})

	select {
	case <-ctx.Done():
		return value, storedAt, false, context.Cause(ctx)
	case res := <-loaded:
		// With both ready, select picks at random: a caller that had given up would get the
		// value or its error as the machine happened to schedule the load. It gets its error.
		if ctx.Err() != nil {
			return value, storedAt, false, context.Cause(ctx)
		}
		if res.Err != nil {
			return value, storedAt, false, res.Err
		}
		e := res.Val.(entry[K, V])
		if e.key != key {
			// Two distinct keys printed alike, so we joined the other key's
			// flight. Rare enough to simply load without sharing.
			return c.loadUnshared(ctx, key, load)
		}
		return e.value, e.storedAt, false, nil
	}
}

func (c *Cache[K, V]) loadUnshared(ctx context.Context, key K, load func(context.Context) (V, time.Time, error)) (value V, storedAt time.Time, hit bool, err error) {
	v, at, err := load(ctx)
	if err != nil {
		return value, storedAt, false, err
	}
	e := c.store(key, v, at)
	return e.value, e.storedAt, false, nil
}

// flightKey names key for singleflight, which only takes strings. Including
// the type keeps equal-looking keys of different dynamic types apart when K
// is an interface.
func flightKey[K comparable](key K) string {
	return fmt.Sprintf("%T:%#v", key, key)
}

// Len returns the number of stored entries, including expired ones the
// janitor has not swept yet.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Stats returns a snapshot of the counters.
func (c *Cache[K, V]) Stats() Stats {
	return Stats{
		Hits:        c.hits.Load(),
		Misses:      c.misses.Load(),
		Evictions:   c.evictions.Load(),
		Expirations: c.expirations.Load(),
		Entries:     c.Len(),
	}
}

// Sweep removes every expired entry and returns how many it removed. It
// walks all entries because recency order is not expiry order; at the
// default 10,000 entries that is well under a millisecond per JanitorInterval.
func (c *Cache[K, V]) Sweep() int {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	removed := 0
	for el := c.recency.Front(); el != nil; {
		next := el.Next()
		if c.expired(el.Value.(*entry[K, V]), now) {
			c.remove(el)
			removed++
		}
		el = next
	}
	c.expirations.Add(uint64(removed))
	return removed
}

// Run is the janitor: it calls Sweep every JanitorInterval until ctx is done.
func (c *Cache[K, V]) Run(ctx context.Context) {
	ticker := time.NewTicker(c.janitorInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			c.Sweep()
		}
	}
}

// lookup returns a copy of the fresh entry under key, marking it most
// recently used. An expired entry found on the way is removed.
func (c *Cache[K, V]) lookup(key K) (entry[K, V], bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return entry[K, V]{}, false
	}
	e := el.Value.(*entry[K, V])
	if c.expired(e, now) {
		c.remove(el)
		c.expirations.Add(1)
		return entry[K, V]{}, false
	}
	c.recency.MoveToFront(el)
	return *e, true
}

// store saves value, made at storedAt, under key as the most recently used
// entry, evicting the least recently used one if the cache is over its bound.
func (c *Cache[K, V]) store(key K, value V, storedAt time.Time) entry[K, V] {
	e := entry[K, V]{key: key, value: value, storedAt: storedAt}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		*el.Value.(*entry[K, V]) = e
		c.recency.MoveToFront(el)
		return e
	}
	c.entries[key] = c.recency.PushFront(&e)
	if c.recency.Len() > c.maxEntries {
		c.remove(c.recency.Back())
		c.evictions.Add(1)
	}
	return e
}

func (c *Cache[K, V]) expired(e *entry[K, V], now time.Time) bool {
	return now.Sub(e.storedAt) >= c.ttl
}

// remove deletes el from both the list and the map; c.mu must be held.
func (c *Cache[K, V]) remove(el *list.Element) {
	e := c.recency.Remove(el).(*entry[K, V])
	delete(c.entries, e.key)
}

func (c *Cache[K, V]) count(hit bool) {
	if hit {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}
