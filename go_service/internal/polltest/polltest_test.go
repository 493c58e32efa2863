package polltest

import (
	"fmt"
	"testing"
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
		{name: "never true", within: 50 * time.Millisecond, wantFailure: "timed out after 50ms waiting for the thing", wantCalls: 2},
		{name: "no time at all still asks once", trueAfter: 1, within: 0, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			calls := 0
			start := time.Now()
			Until(r, tt.within, "the thing", func() bool {
				calls++
				return tt.trueAfter > 0 && calls >= tt.trueAfter
			})
			if r.failure != tt.wantFailure {
				t.Errorf("failure = %q, want %q", r.failure, tt.wantFailure)
			}
			if calls < tt.wantCalls {
				t.Errorf("cond called %d times, want at least %d", calls, tt.wantCalls)
			}
			if tt.wantFailure != "" {
				if took := time.Since(start); took < tt.within || took > tt.within+time.Second {
					t.Errorf("gave up after %s, want just after %s", took, tt.within)
				}
			}
		})
	}
}
