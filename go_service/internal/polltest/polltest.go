// Package polltest waits in tests for a condition that has no signal of
// its own to wait on (a listener closing, a restarted Redis answering):
// it polls, and fails the test when the bound passes.
package polltest

import (
	"testing"
	"time"
)

// Interval is how often Until asks again: short against the waits it is
// used for (milliseconds to seconds), long enough not to busy-loop.
const Interval = 10 * time.Millisecond

// Until calls cond every Interval until it returns true, and fails t with
// "timed out after WITHIN waiting for WHAT" if it has not within that
// bound (cond is always asked at least once). It must be called from the
// test's goroutine, like t.Fatal.
func Until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
			return // t.Fatalf ends the goroutine; a recording testing.TB in tests may not
		}
		time.Sleep(Interval)
	}
}
