package load

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	valid := Config{Targets: []string{"http://127.0.0.1/"}, Connections: 1, Duration: time.Second, MaxRequests: 1, Timeout: time.Second}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"no target", func(c *Config) { c.Targets = nil }, "no target"},
		{"https", func(c *Config) { c.Targets = []string{"https://127.0.0.1/"} }, "only http://"},
		{"zero connections", func(c *Config) { c.Connections = 0 }, "connections"},
		{"too many connections", func(c *Config) { c.Connections = MaxConnections + 1 }, "connections"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "duration"},
		{"unbounded duration", func(c *Config) { c.Duration = MaxDuration + time.Second }, "duration"},
		{"no requests", func(c *Config) { c.MaxRequests = 0 }, "max requests"},
		{"no timeout", func(c *Config) { c.Timeout = 0 }, "timeout"},
		{"open loop", func(c *Config) { c.Rate = 100 }, ""},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate"},
		{"unbounded rate", func(c *Config) { c.Rate = MaxRate + 1 }, "rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.change(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// slowServer answers every request after delay, and counts the requests it holds at once. With
// holdFor > 0 it answers none before holdFor of them are in flight together (or after
// gateTimeout): a client that waits for answers before it sends more never gets there.
type slowServer struct {
	delay   time.Duration
	holdFor int
	gate    chan struct{}

	mu             sync.Mutex
	inFlight, most int
	gateOpen       bool
}

// gateTimeout ends a hold no client completes: shorter than the runs' request timeout.
const gateTimeout = 3 * time.Second

func newSlowServer(delay time.Duration, holdFor int) *slowServer {
	return &slowServer{delay: delay, holdFor: holdFor, gate: make(chan struct{})}
}

func (s *slowServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.inFlight++
	s.most = max(s.most, s.inFlight)
	if s.holdFor > 0 && s.inFlight >= s.holdFor && !s.gateOpen {
		s.gateOpen = true
		close(s.gate)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.inFlight--
	}()
	if s.holdFor > 0 {
		select {
		case <-s.gate:
		case <-time.After(gateTimeout):
		}
	}
	time.Sleep(s.delay)
	_, _ = w.Write([]byte("ok\n"))
}

// mostInFlight is the most requests the server ever held at once.
func (s *slowServer) mostInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.most
}

// An open-loop run keeps its rate when every answer takes longer than the period: it sends while
// earlier requests are unanswered, adding connections for them, and its latencies show the wait.
// A closed loop on the same connections has at most one request in flight on each, and would send
// a fraction of the requests, each measured as fast as the server let it start (coordinated
// omission). Asserted by what the servers saw at once, not by how many requests a second of this
// machine's time let through.
func TestRunOpenLoopKeepsTheRateWhenAnswersAreSlow(t *testing.T) {
	const connections, delay, rate = 2, 100 * time.Millisecond, 200
	closedServer := newSlowServer(delay, 0)
	closedTarget := httptest.NewServer(closedServer)
	defer closedTarget.Close()
	// Ten at once: five times the connections the run starts with, 50 ms of the open loop's sends.
	const heldAtOnce = 10
	openServer := newSlowServer(delay, heldAtOnce)
	openTarget := httptest.NewServer(openServer)
	defer openTarget.Close()

	config := Config{Connections: connections, Duration: time.Second, MaxRequests: 1000, Timeout: 5 * time.Second}
	config.Targets = []string{closedTarget.URL}
	closed, err := Run(context.Background(), config)
	if err != nil {
		t.Fatal(err)
	}
	config.Targets, config.Rate = []string{openTarget.URL}, rate
	open, err := Run(context.Background(), config)
	if err != nil {
		t.Fatal(err)
	}
	if most := closedServer.mostInFlight(); most > connections {
		t.Errorf("closed loop had %d requests in flight at once, want at most one per connection (%d)", most, connections)
	}
	// Upper bounds only: a slow machine sends fewer, never more.
	if closed.Requests > 25 {
		t.Errorf("closed loop sent %d requests, want at most 25 (2 connections, 100 ms each, 1 s)", closed.Requests)
	}
	if open.Requests > rate+1 {
		t.Errorf("open loop at %d/s for 1 s sent %d requests, want at most %d", rate, open.Requests, rate+1)
	}
	if most := openServer.mostInFlight(); most < heldAtOnce {
		t.Errorf("open loop had at most %d requests in flight at once, want %d: it waited for answers", most, heldAtOnce)
	}
	if open.OfferedRPS != rate || open.Failed != 0 || open.P50Ms < float64(delay.Milliseconds()) {
		t.Errorf("open loop report = %+v, want offered %d/s, no failures, p50 >= %v", open, rate, delay)
	}
}

func TestRunCountsStatusesAndStopsAtMaxRequests(t *testing.T) {
	var served atomic.Int64
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.URL.Path == "/fail" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer server.Close()

	report, err := Run(context.Background(), Config{
		Targets:     []string{server.URL + "/ok", server.URL + "/fail"},
		Connections: 4,
		Duration:    30 * time.Second,
		MaxRequests: 200,
		Timeout:     time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if report.Seconds > 10 {
		t.Errorf("run took %.1f s: the request bound did not stop it", report.Seconds)
	}
	// Requests already handed to workers when the bound is reached still go out: a few per worker.
	if report.Requests < 200 || report.Requests > 200+2*4 {
		t.Errorf("Requests = %d, want 200..208", report.Requests)
	}
	if got := report.Status["200"] + report.Status["500"]; uint64(got) != report.Requests {
		t.Errorf("statuses %v do not add up to %d requests", report.Status, report.Requests)
	}
	if report.Status["500"] < 90 || uint64(report.Status["500"]) != report.Failed {
		t.Errorf("Status[500] = %d, Failed = %d: want about half, and equal", report.Status["500"], report.Failed)
	}
	if report.NotConnected != 0 || len(report.Errors) != 0 {
		t.Errorf("NotConnected = %d, Errors = %v, want none", report.NotConnected, report.Errors)
	}
	if report.P50Ms <= 0 || report.P99Ms < report.P50Ms || report.MaxMs < report.P99Ms {
		t.Errorf("latencies p50 %.3f p99 %.3f max %.3f are not ordered", report.P50Ms, report.P99Ms, report.MaxMs)
	}
	if report.RPS <= 0 {
		t.Errorf("RPS = %f", report.RPS)
	}
}

func TestRunSeparatesNotConnectedFromFailed(t *testing.T) {
	// A port nothing listens on: every request is refused, none was ever in flight.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + listener.Addr().String() + "/"
	listener.Close()
	// A server that accepts and hangs up without answering: the request was in flight and lost.
	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer hangUp.Close()

	report, err := Run(context.Background(), Config{
		Targets:     []string{closedURL, hangUp.URL},
		Connections: 1,
		Duration:    30 * time.Second,
		MaxRequests: 20,
		Timeout:     time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The targets alternate; the worker may send one more after the bound.
	if report.NotConnected < 10 || report.Failed < 10 || report.NotConnected+report.Failed != report.Requests {
		t.Errorf("NotConnected = %d, Failed = %d of %d, want at least 10 each and nothing else (errors: %v)",
			report.NotConnected, report.Failed, report.Requests, report.Errors)
	}
	// One message per kind of error, not one per client port.
	if len(report.Errors) != 2 {
		t.Errorf("Errors = %v, want the refusal and the hang-up, once each", report.Errors)
	}
}

// A response cut off mid-body fails while reading it, after the transport returned: a request
// lost, never counted as not connected.
func TestRunCountsACutOffBodyAsFailed(t *testing.T) {
	cutOff := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer cutOff.Close()

	report, err := Run(context.Background(), Config{
		Targets: []string{cutOff.URL}, Connections: 1, Duration: 30 * time.Second, MaxRequests: 5, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if report.NotConnected != 0 || report.Failed < 5 {
		t.Errorf("NotConnected = %d, Failed = %d of %d: want every cut-off response failed (errors: %v)",
			report.NotConnected, report.Failed, report.Requests, report.Errors)
	}
}

func TestRunEndsWithContext(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	report, err := Run(ctx, Config{
		Targets: []string{server.URL}, Connections: 2, Duration: time.Minute, MaxRequests: 1 << 40, Timeout: time.Second,
	})
	if err == nil {
		t.Fatal("Run returned no error after its context ended")
	}
	if report.Seconds > 5 || report.Requests == 0 {
		t.Errorf("Seconds = %.1f, Requests = %d: want a short run that sent something", report.Seconds, report.Requests)
	}
}

func TestRunTalliesAnswersByTargetCodeAndHeader(t *testing.T) {
	var served atomic.Int64
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every other answer on /cached is a hit; /plain has no such header at all.
		if r.URL.Path == "/cached" {
			status := "MISS"
			if served.Add(1)%2 == 0 {
				status = "HIT"
			}
			w.Header().Set("X-Cache-Status", status)
		}
		if r.URL.Path == "/gone" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer server.Close()

	report, err := Run(context.Background(), Config{
		Targets:     []string{server.URL + "/cached", server.URL + "/plain", server.URL + "/gone"},
		Connections: 3, Duration: 10 * time.Second, MaxRequests: 300, Timeout: 5 * time.Second,
		TallyHeader: "X-Cache-Status",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[Answer]int{}
	total := 0
	for _, a := range report.Answers {
		got[Answer{Target: strings.TrimPrefix(a.Target, server.URL), Code: a.Code, Header: a.Header}] = a.Count
		total += a.Count
	}
	if uint64(total) != report.Requests {
		t.Fatalf("answers add up to %d, report says %d requests", total, report.Requests)
	}
	hits, misses := got[Answer{Target: "/cached", Code: 200, Header: "HIT"}], got[Answer{Target: "/cached", Code: 200, Header: "MISS"}]
	if int64(hits+misses) != served.Load() || hits == 0 || misses == 0 {
		t.Fatalf("/cached: %d HIT + %d MISS, server answered %d", hits, misses, served.Load())
	}
	if got[Answer{Target: "/plain", Code: 200}] == 0 || got[Answer{Target: "/gone", Code: 404}] == 0 {
		t.Fatalf("answers = %+v, want /plain 200 and /gone 404 without a header value", report.Answers)
	}
	if len(got) != 4 {
		t.Fatalf("answers = %+v, want exactly 4 kinds", report.Answers)
	}
}
