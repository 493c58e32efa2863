package cache

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
)

// Both caches get the same bound, TTL and key space. Hits read keys that
// were all stored up front; misses read keys never stored; sets write a key
// space twice the bound, so they keep evicting.
const (
	benchMaxEntries = 10_000
	benchTTL        = time.Hour // nothing expires during a run
)

// benchCache is the part of a cache the benchmarks exercise.
type benchCache interface {
	Get(key string) bool
	Set(key string, value int)
}

type ours struct{ c *Cache[string, int] }

func (o ours) Get(key string) bool   { _, _, ok := o.c.Get(key); return ok }
func (o ours) Set(key string, v int) { o.c.Set(key, v) }

type otterCache struct{ c *otter.Cache[string, int] }

func (o otterCache) Get(key string) bool   { _, ok := o.c.GetIfPresent(key); return ok }
func (o otterCache) Set(key string, v int) { o.c.Set(key, v) }

type benchImpl struct {
	name     string
	newCache func(b *testing.B) benchCache
}

func benchImpls() []benchImpl {
	return []benchImpl{
		{"impl=ours", func(b *testing.B) benchCache {
			c, err := New[string, int](Options{MaxEntries: benchMaxEntries, TTL: benchTTL, JanitorInterval: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			return ours{c}
		}},
		{"impl=otter", func(*testing.B) benchCache {
			return otterCache{otter.Must(&otter.Options[string, int]{
				MaximumSize:      benchMaxEntries,
				ExpiryCalculator: otter.ExpiryWriting[string, int](benchTTL),
			})}
		}},
	}
}

func benchKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return keys
}

// runParallel has every goroutine walk keys from its own random offset.
func runParallel(b *testing.B, keys []string, op func(key string, i int)) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			op(keys[i%len(keys)], i)
			i++
		}
	})
}

func BenchmarkGetHit(b *testing.B) {
	keys := benchKeys("hit", benchMaxEntries)
	for _, impl := range benchImpls() {
		b.Run(impl.name, func(b *testing.B) {
			c := impl.newCache(b)
			for i, k := range keys {
				c.Set(k, i)
			}
			for _, k := range keys {
				if !c.Get(k) {
					b.Fatalf("stored key %q is missing before the run", k)
				}
			}
			runParallel(b, keys, func(key string, _ int) { c.Get(key) })
		})
	}
}

func BenchmarkGetMiss(b *testing.B) {
	keys := benchKeys("miss", benchMaxEntries)
	for _, impl := range benchImpls() {
		b.Run(impl.name, func(b *testing.B) {
			c := impl.newCache(b)
			runParallel(b, keys, func(key string, _ int) { c.Get(key) })
		})
	}
}

func BenchmarkSet(b *testing.B) {
	keys := benchKeys("set", 2*benchMaxEntries)
	for _, impl := range benchImpls() {
		b.Run(impl.name, func(b *testing.B) {
			c := impl.newCache(b)
			runParallel(b, keys, func(key string, i int) { c.Set(key, i) })
		})
	}
}
