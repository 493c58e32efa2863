// Package load runs an HTTP load with vegeta's attacker and summarises it for the benchmark and
// the fault tests. Two models:
//   - closed loop (Config.Rate 0): a fixed number of workers, each on its own keep-alive
//     connection, each sending its next request once the last one is answered;
//   - open loop (Config.Rate > 0): requests start at a fixed rate whatever the answers do, and
//     workers (connections) are added while every one is busy, so a slow answer delays no later
//     request and the latencies include the queueing a saturated server causes (no coordinated
//     omission). Report.RPS below the rate says the generator could not keep up.
package load

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Bounds on a run: every load loop here is bounded in time and in count.
const (
	MaxDuration    = 10 * time.Minute
	MaxConnections = 2000
	MaxRate        = 1_000_000
	ConnectTimeout = 2 * time.Second
	// Distinct error messages kept; the rest are counted under otherErrors.
	maxErrorKinds = 20
	otherErrors   = "(other errors)"
)

// Config is one run: every worker sends GETs to the targets in turn, one at a time.
type Config struct {
	Targets     []string
	Connections int
	Duration    time.Duration
	// MaxRequests stops the run early once this many requests were sent.
	MaxRequests uint64
	// Rate, in requests per second, makes the run open loop; 0 keeps it closed loop.
	// Connections is then the number of workers to start with (at most MaxConnections).
	Rate    float64
	Timeout time.Duration
	// TallyHeader, when set, makes the report count answers by target, status code and this
	// response header's value (e.g. X-Cache-Status), so a caller can check exact per-route
	// counts elsewhere (the stack's metrics) against what was really answered.
	TallyHeader string
}

// Validate reports the first thing wrong with c, in words a user can act on.
func (c Config) Validate() error {
	switch {
	case len(c.Targets) == 0:
		return errors.New("no target URL")
	case c.Connections < 1 || c.Connections > MaxConnections:
		return fmt.Errorf("connections must be within 1..%d, got %d", MaxConnections, c.Connections)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("duration must be within (0, %s], got %s", MaxDuration, c.Duration)
	case c.MaxRequests == 0:
		return errors.New("max requests must be at least 1")
	case c.Timeout <= 0:
		return fmt.Errorf("timeout must be positive, got %s", c.Timeout)
	case c.Rate < 0 || c.Rate > MaxRate:
		return fmt.Errorf("rate must be within 0..%d requests/s (0: closed loop), got %g", MaxRate, c.Rate)
	}
	for _, target := range c.Targets {
		if !strings.HasPrefix(target, "http://") {
			return fmt.Errorf("target %q: only http:// URLs are supported", target)
		}
	}
	return nil
}

// Report is what a run measured. Latencies are in milliseconds.
type Report struct {
	Targets     []string `json:"targets"`
	Connections int      `json:"connections"`
	// OfferedRPS is Config.Rate: what an open-loop run was asked to send (0: closed loop).
	OfferedRPS float64        `json:"offered_rps"`
	Seconds    float64        `json:"seconds"`
	Requests   uint64         `json:"requests"`
	RPS        float64        `json:"rps"`
	P50Ms      float64        `json:"p50_ms"`
	P90Ms      float64        `json:"p90_ms"`
	P99Ms      float64        `json:"p99_ms"`
	MaxMs      float64        `json:"max_ms"`
	Status     map[string]int `json:"status"`
	// Errors counts transport errors (no HTTP status) by message.
	Errors map[string]int `json:"errors"`
	// NotConnected counts requests that no attempt sent: refused, unreachable, dial timeouts, or
	// a connection that failed before the request was written. Never in flight, so never lost.
	NotConnected uint64 `json:"not_connected"`
	// Failed counts every other request without a 2xx/3xx answer: 4xx, 5xx, resets, timeouts.
	Failed uint64 `json:"failed"`
	// Answers: every request that got an HTTP answer, by target, code and the value of
	// Config.TallyHeader ("" when absent). Only with TallyHeader; sorted.
	Answers []Answer `json:"answers,omitempty"`

	tally map[Answer]int
}

// Answer is one (target, status code, header value) and how many answers had it.
type Answer struct {
	Target string `json:"target"`
	Code   int    `json:"code"`
	Header string `json:"header"`
	Count  int    `json:"count"`
}

// Run sends the load until the duration or the request count is reached, or ctx ends.
func Run(ctx context.Context, c Config) (Report, error) {
	if err := c.Validate(); err != nil {
		return Report{}, err
	}
	targets := make([]vegeta.Target, len(c.Targets))
	for i, url := range c.Targets {
		targets[i] = vegeta.Target{Method: http.MethodGet, URL: url}
	}
	workers, maxWorkers := uint64(c.Connections), uint64(c.Connections)
	// Freq 0: no pacing, each worker sends its next request as soon as the last one answered.
	rate := vegeta.Rate{}
	if c.Rate > 0 {
		// Per a microsecond-exact period, so that fractional rates are kept.
		rate = vegeta.Rate{Freq: 1, Per: time.Duration(float64(time.Second) / c.Rate)}
		maxWorkers = MaxConnections
	}
	attacker := vegeta.NewAttacker(
		vegeta.Client(newClient(c, int(maxWorkers))),
		vegeta.Workers(workers),
		vegeta.MaxWorkers(maxWorkers),
		// Bodies are read to the end (the connection stays reusable) but not kept.
		vegeta.MaxBody(0),
	)
	stop := context.AfterFunc(ctx, func() { attacker.Stop() })
	defer stop()

	var metrics vegeta.Metrics
	report := Report{Targets: c.Targets, Connections: c.Connections, OfferedRPS: c.Rate, Errors: map[string]int{}}
	started := time.Now()
	if c.TallyHeader != "" {
		report.tally = map[Answer]int{}
	}
	for result := range attacker.Attack(vegeta.NewStaticTargeter(targets...), rate, c.Duration, "load") {
		metrics.Add(result)
		report.count(result)
		if report.tally != nil && result.Code != 0 {
			report.tally[Answer{Target: result.URL, Code: int(result.Code), Header: result.Headers.Get(c.TallyHeader)}]++
		}
		if metrics.Requests >= c.MaxRequests {
			attacker.Stop()
		}
	}
	metrics.Close()
	report.Seconds = time.Since(started).Seconds()
	report.Requests = metrics.Requests
	if report.Seconds > 0 {
		report.RPS = float64(report.Requests) / report.Seconds
	}
	report.P50Ms = milliseconds(metrics.Latencies.P50)
	report.P90Ms = milliseconds(metrics.Latencies.P90)
	report.P99Ms = milliseconds(metrics.Latencies.P99)
	report.MaxMs = milliseconds(metrics.Latencies.Max)
	report.Status = metrics.StatusCodes
	report.Answers = answers(report.tally)
	return report, ctx.Err()
}

// newClient: at most connections keep-alive connections, one per worker, HTTP/1.1, no redirects followed, and never a
// proxy from the environment (targets are loopback or containers the caller runs). A connect
// timeout of its own makes a dial that never completes (an address that went away) count as
// not connected rather than as a request lost.
func newClient(c Config, connections int) *http.Client {
	dialer := &net.Dialer{Timeout: ConnectTimeout, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: c.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: tracedTransport{&http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: connections,
			MaxConnsPerHost:     connections,
			DisableCompression:  true,
		}},
	}
}

// tracedTransport says, in each transport error, what happened to the request on each connection
// it was tried on: "... (reused connection, request written; then no connection)", and "never
// sent" when no attempt wrote it.
// That tells a shutdown's failure modes apart: a reset on a fresh connection that carried a
// request means the server's kernel completed the handshake and the connection was dropped before
// the server answered; on a reused one, that an idle keep-alive connection was closed as the
// request was sent. net/http retries the second kind once for idempotent requests
// (http.Transport's shouldRetryRequest), so an error lists every attempt.
type tracedTransport struct{ next http.RoundTripper }

func (t tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// WroteRequest runs on the transport's write goroutine, the others on the caller's.
	var mu sync.Mutex
	var attempts []attempt
	last := func(update func(*attempt)) {
		mu.Lock()
		defer mu.Unlock()
		if len(attempts) > 0 {
			update(&attempts[len(attempts)-1])
		}
	}
	trace := &httptrace.ClientTrace{
		GetConn: func(string) {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, attempt{})
		},
		GotConn: func(info httptrace.GotConnInfo) {
			last(func(a *attempt) { a.connected, a.reused = true, info.Reused })
		},
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			last(func(a *attempt) { a.written = info.Err == nil })
		},
	}
	resp, err := t.next.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		return nil, connectionError{err: err, attempts: slices.Clone(attempts)}
	}
	return resp, nil
}

// requestWritten marks, in an error message, an attempt that sent the whole request; neverSent
// marks a request that no attempt sent. Only the second is counted as not connected: any other
// error (one after the request was written, or one reading the body, which never passes
// through the transport) is a request lost.
const (
	requestWritten = "request written"
	neverSent      = "never sent"
)

// attempt is one try of a request on one connection.
type attempt struct{ connected, reused, written bool }

func (a attempt) String() string {
	switch {
	case !a.connected:
		return "no connection"
	case a.reused && a.written:
		return "reused connection, " + requestWritten
	case a.reused:
		return "reused connection, request not written"
	case a.written:
		return "fresh connection, " + requestWritten
	default:
		return "fresh connection, request not written"
	}
}

// connectionError is a transport error with the attempts tracedTransport saw.
type connectionError struct {
	err      error
	attempts []attempt
}

func (e connectionError) Error() string {
	tries := make([]string, len(e.attempts))
	sent := false
	for i, a := range e.attempts {
		tries[i] = a.String()
		sent = sent || a.written
	}
	if !sent {
		tries = append(tries, neverSent)
	}
	return fmt.Sprintf("%v (%s)", e.err, strings.Join(tries, "; then "))
}

func (e connectionError) Unwrap() error { return e.err }

// localAddress matches the client side of a connection in an error message ("127.0.0.1:41234->"),
// which would make every occurrence of one error a message of its own.
var localAddress = regexp.MustCompile(`[0-9a-fA-F.:\[\]]+:\d+->`)

func (r *Report) count(result *vegeta.Result) {
	switch {
	case result.Code >= 200 && result.Code < 400:
		return
	case result.Code == 0 && strings.Contains(result.Error, neverSent):
		r.NotConnected++
	default:
		r.Failed++
	}
	if result.Code != 0 {
		return // counted by status
	}
	message := localAddress.ReplaceAllString(result.Error, "")
	if _, known := r.Errors[message]; !known && len(r.Errors) >= maxErrorKinds {
		message = otherErrors
	}
	r.Errors[message]++
}

// answers lists the tally sorted by target, code and header value; nil for no tally.
func answers(tally map[Answer]int) []Answer {
	if tally == nil {
		return nil
	}
	list := make([]Answer, 0, len(tally))
	for answer, count := range tally {
		answer.Count = count
		list = append(list, answer)
	}
	slices.SortFunc(list, func(a, b Answer) int {
		return cmp.Or(strings.Compare(a.Target, b.Target), cmp.Compare(a.Code, b.Code), strings.Compare(a.Header, b.Header))
	})
	return list
}

func milliseconds(d time.Duration) float64 {
	ms, _ := strconv.ParseFloat(strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64), 64)
	return ms
}
