// Package clocktest is a manually advanced clock for tests, so that no test
// waits for a TTL: pass Clock.Now wherever the code under test takes a
// `now func() time.Time`.
package clocktest

import (
	"sync"
	"time"
)

// Clock is safe for concurrent use. Create it with New.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock reading start until advanced.
func New(start time.Time) *Clock {
	return &Clock{now: start}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
