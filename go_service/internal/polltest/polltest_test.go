package polltest

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a testing.TB whose Fatalf records the failure instead of
// ending the goroutine, so that a test can see Until fail.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failure = fmt.Sprintf(format, args...) }

func TestUntil(t *testing.T) {
	tests := []struct {
		name        string
		trueAfter   int // cond's answer turns true on this call; 0: never
		within      time.Duration
		wantFailure string
		wantCalls   int // at least
	}{
		{name: "already true", trueAfter: 1, within: time.Second, wantCalls: 1},
		{name: "true on the third call", trueAfter: 3, within: time.Second, wantCalls: 3},
		{name: "never true", within: 50 * time.Millisecond, wantFailure: "timed out after 50ms waiting for the thing", wantCalls: 6},
		{name: "no time at all still asks once", trueAfter: 1, within: 0, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// In a bubble Until's clock and sleeps are fake: the bound is checked exactly, however
			// busy the machine.
			synctest.Test(t, func(t *testing.T) {
				r := &recorder{TB: t}
				calls := 0
				start := time.Now()
				Until(r, tt.within, "the thing", func() bool {
					calls++
					return tt.trueAfter > 0 && calls >= tt.trueAfter
				})
				took := time.Since(start)
				if r.failure != tt.wantFailure {
					t.Errorf("failure = %q, want %q", r.failure, tt.wantFailure)
				}
				if calls < tt.wantCalls {
					t.Errorf("cond called %d times, want at least %d", calls, tt.wantCalls)
				}
				if tt.wantFailure != "" && (took < tt.within || took > tt.within+Interval) {
					t.Errorf("gave up after %s, want within one Interval (%s) after %s", took, Interval, tt.within)
				}
				if tt.wantFailure == "" && took != time.Duration(calls-1)*Interval {
					t.Errorf("returned after %s and %d calls, want one Interval between calls", took, calls)
				}
			})
		})
	}
}
