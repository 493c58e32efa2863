package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"cacheplatform/go_service/internal/config"
	"cacheplatform/go_service/internal/polltest"
	"cacheplatform/go_service/internal/redistest"
)

func testConfig() config.Config {
	return config.Config{
		Listen:          "127.0.0.1:0",
		CacheTTL:        time.Minute,
		CacheL1TTL:      time.Minute,
		CacheBackend:    config.BackendMemory,
		RedisTimeout:    50 * time.Millisecond,
		CacheMaxEntries: 100,
		JanitorInterval: time.Second,
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: 5 * time.Second,
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func refusesConnections(addr string) func() bool {
	return func() bool {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	}
}

type response struct {
	status int
	body   string
	err    error
}

func get(url string) response {
	resp, err := http.Get(url)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: string(body), err: err}
}

func TestServeHTTPDrainsInFlightRequests(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	})
	ln := listen(t)
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	var ready atomic.Bool
	served := make(chan error)
	go func() { served <- serveHTTP(ctx, ln, slow, &ready, 5*time.Second, slog.New(slog.DiscardHandler)) }()

	inFlight := make(chan response)
	go func() { inFlight <- get("http://" + addr + "/slow") }()
	<-entered
	if !ready.Load() {
		t.Error("not ready while serving")
	}

	cancel()
	polltest.Until(t, 5*time.Second, "shutdown to close the listener", refusesConnections(addr))
	if ready.Load() {
		t.Error("still ready while draining")
	}
	close(release)

	if got := <-inFlight; got.err != nil || got.status != http.StatusOK || got.body != "finished" {
		t.Errorf("in-flight request = %+v, want 200 finished", got)
	}
	if err := <-served; err != nil {
		t.Errorf("serveHTTP = %v, want nil after a clean drain", err)
	}
}

// pipeListener is an in-memory net.Listener: Dial hands the server one end of a net.Pipe. In a
// synctest bubble every read, write and accept on it is durably blocking, so the drain's timers run
// on the fake clock and a test can say how long a stop took, exactly, on a machine of any speed
// (real sockets are not durably blocking: a bubble's clock would not move past them).
type pipeListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case conn := <-l.conns:
		return conn, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// Dial connects a client once the server accepts, or is refused, as by a closed TCP listener.
func (l *pipeListener) Dial() (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, errors.New("connection refused: the listener is closed")
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// A request sent on an idle keep-alive connection just after the stop began
// is answered, with "Connection: close", and the connection then closed.
// Written on a raw connection: net/http's client would retry it silently.
func TestServeHTTPAnswersARequestOnAnIdleKeepAliveConnectionWhileDraining(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hello := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })
		ln := newPipeListener()
		ctx, cancel := context.WithCancel(t.Context())
		var ready atomic.Bool
		served := make(chan error, 1) // buffered: a failed test leaves no goroutine blocked on it
		go func() { served <- serveHTTP(ctx, ln, hello, &ready, 5*time.Second, slog.New(slog.DiscardHandler)) }()

		conn, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := bufio.NewReader(conn)
		ask := func() (*http.Response, string, error) {
			if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				return nil, "", err
			}
			resp, err := http.ReadResponse(client, nil)
			if err != nil {
				return nil, "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return resp, string(body), err
		}
		if resp, _, err := ask(); err != nil || resp.Close {
			t.Fatalf("first request: %v, close=%v; want a kept-alive answer", err, resp != nil && resp.Close)
		}

		cancel()
		synctest.Wait() // the stop has begun: every goroutine waits, the drain on keepAliveLinger
		if _, err := ln.Dial(); err == nil {
			t.Error("a new connection was accepted after the stop began")
		}
		time.Sleep(keepAliveLinger / 2) // the connection has been idle since the stop began

		resp, body, err := ask()
		if err != nil {
			t.Fatalf("request on the idle connection after the stop began: %v, want an answer", err)
		}
		if resp.StatusCode != http.StatusOK || body != "hello" || !resp.Close {
			t.Errorf("answer = %d %q close=%v, want 200 hello with Connection: close", resp.StatusCode, body, resp.Close)
		}
		if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("after the answer: read %d bytes, %v; want the server to close the connection (EOF)", n, err)
		}
		if err := <-served; err != nil {
			t.Errorf("serveHTTP = %v, want nil", err)
		}
	})
}

// A stopping server with an idle connection that sends nothing more waits
// keepAliveLinger for it, not the whole shutdown timeout.
func TestServeHTTPClosesAnIdleConnectionAfterTheLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		ctx, cancel := context.WithCancel(t.Context())
		var ready atomic.Bool
		served := make(chan error, 1) // buffered: a failed test leaves no goroutine blocked on it
		go func() {
			served <- serveHTTP(ctx, ln, http.NotFoundHandler(), &ready, time.Minute, slog.New(slog.DiscardHandler))
		}()
		conn, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
			t.Fatal(err)
		}

		started := time.Now()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serveHTTP = %v, want nil", err)
		}
		if took := time.Since(started); took != keepAliveLinger {
			t.Errorf("stop took %s with one idle connection, want keepAliveLinger (%s)", took, keepAliveLinger)
		}
	})
}

func TestServeHTTPGivesUpAfterShutdownTimeout(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	stuck := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(entered)
		<-release
	})
	ln := listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	var ready atomic.Bool
	served := make(chan error)
	go func() {
		served <- serveHTTP(ctx, ln, stuck, &ready, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	go get("http://" + ln.Addr().String() + "/")
	<-entered

	cancel()
	if err := <-served; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("serveHTTP = %v, want context.DeadlineExceeded", err)
	}
}

func TestServeHTTPReportsServeFailure(t *testing.T) {
	ln := listen(t)
	ln.Close()
	var ready atomic.Bool
	err := serveHTTP(t.Context(), ln, http.NotFoundHandler(), &ready, time.Second, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("serveHTTP on a closed listener returned nil")
	}
	if ready.Load() {
		t.Error("ready after serving failed")
	}
}

func TestServeRunsTheService(t *testing.T) {
	ln := listen(t)
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error)
	go func() { served <- Serve(ctx, ln, testConfig(), slog.New(slog.DiscardHandler)) }()

	if got := get(base + "/readyz"); got.status != http.StatusOK {
		t.Errorf("GET /readyz = %+v, want 200", got)
	}
	first, second := get(base+"/time"), get(base+"/time")
	if first.err != nil || second.err != nil || first.body != second.body {
		t.Errorf("two GET /time within the TTL = %+v and %+v, want the same time", first, second)
	}
	scrape := get(base + "/metrics")
	for _, series := range []string{`cache_requests_total{result="hit"} 1`, "cache_entries 1", "go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(scrape.body, series) {
			t.Errorf("/metrics lacks %q", series)
		}
	}

	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
}

// Two servers with the redis backend share /time through a real Redis; with
// Redis gone (and before it ever came up) they still answer 200, counting the
// errors, and once it is back they share again.
func TestServeSharesThroughRedisAndSurvivesItsLoss(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig()
	cfg.CacheBackend, cfg.RedisURL = config.BackendRedis, srv.URL()
	cfg.CacheL1TTL = time.Second // so the replicas go back to Redis within the test
	// A bound no answer from a live Redis misses on any machine (a slow answer read as Redis down
	// would have each replica compute its own /time); a stopped Redis refuses at once.
	cfg.RedisTimeout = 30 * time.Second
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var bases []string
	var done []chan error
	for range 2 {
		ln := listen(t)
		bases = append(bases, "http://"+ln.Addr().String())
		served := make(chan error, 1)
		done = append(done, served)
		go func() { served <- Serve(ctx, ln, cfg, slog.New(slog.DiscardHandler)) }()
	}

	a, b := get(bases[0]+"/time"), get(bases[1]+"/time")
	if a.status != http.StatusOK || b.body != a.body {
		t.Fatalf("GET /time on two replicas = %+v and %+v, want one shared time", a, b)
	}

	srv.Kill()
	time.Sleep(cfg.CacheL1TTL) // the in-process copies expire; the next answers need Redis
	for _, base := range bases {
		start := time.Now()
		got := get(base + "/time")
		// Refused in milliseconds; waiting out the timeout would take all of it.
		if elapsed := time.Since(start); got.status != http.StatusOK || elapsed > cfg.RedisTimeout/3 {
			t.Fatalf("with Redis down GET %s/time = %+v after %s, want 200 long before the %s timeout", base, got, elapsed, cfg.RedisTimeout)
		}
		// One lookup, one failed command (its GET), nothing else tried.
		scrape := get(base + "/metrics")
		for _, series := range []string{"redis_errors_total 1\n", `cache_shared_requests_total{result="error"} 1` + "\n"} {
			if !strings.Contains(scrape.body, series) {
				t.Errorf("%s: /metrics lacks %q:\n%s", base, series, scrape.body)
			}
		}
	}

	srv.Restart()
	time.Sleep(cfg.CacheL1TTL)
	a = get(bases[0] + "/time")
	b = get(bases[1] + "/time")
	if a.status != http.StatusOK || b.body != a.body {
		t.Fatalf("after Redis came back GET /time = %+v and %+v, want one shared time again", a, b)
	}

	cancel()
	for _, served := range done {
		if err := <-served; err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	}
}

// With Redis requiring a password (an ACL user, the default user off), the service authenticates
// as REDIS_URL's user with the password in REDIS_PASSWORD_FILE and shares through Redis; its
// log names Redis without the URL's userinfo, whichever way the password came.
func TestServeAuthenticatesAsItsRedisUser(t *testing.T) {
	const password = "s3cret-of-the-test"
	srv := redistest.Start(t, "--user", "default", "off", "--user", "go-service", "on", ">"+password, "~*", "+@all")
	secretFile := t.TempDir() + "/redis-password"
	if err := os.WriteFile(secretFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url, file string
		wantErrors      bool
	}{
		{"password from a file", "redis://go-service@" + srv.Addr() + "/0", secretFile, false},
		{"password in the URL", "redis://go-service:" + password + "@" + srv.Addr() + "/0", "", false},
		{"no password", "redis://go-service@" + srv.Addr() + "/0", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.CacheBackend, cfg.RedisURL, cfg.RedisPasswordFile = config.BackendRedis, tc.url, tc.file
			cfg.RedisTimeout = time.Second // a busy machine's slow answer is not what this tests
			var logs syncBuffer
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ln := listen(t)
			served := make(chan error, 1)
			go func() { served <- Serve(ctx, ln, cfg, slog.New(slog.NewJSONHandler(&logs, nil))) }()
			base := "http://" + ln.Addr().String()
			if got := get(base + "/time"); got.status != http.StatusOK {
				t.Fatalf("GET /time = %+v", got)
			}
			scrape := get(base + "/metrics").body
			if sawErrors := !strings.Contains(scrape, "redis_errors_total 0\n"); sawErrors != tc.wantErrors {
				t.Errorf("Redis errors counted: %v, want %v:\n%s", sawErrors, tc.wantErrors, scrape)
			}
			cancel()
			if err := <-served; err != nil {
				t.Fatalf("Serve = %v", err)
			}
			if !strings.Contains(logs.String(), `"redis":"redis://`+srv.Addr()+`/0"`) || strings.Contains(logs.String(), password) {
				t.Errorf("the log should name Redis without the userinfo and never the password:\n%s", logs.String())
			}
		})
	}
}

func TestServeRefusesAnUnreadablePasswordFile(t *testing.T) {
	empty := t.TempDir() + "/empty"
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{t.TempDir() + "/missing", empty} {
		cfg := testConfig()
		cfg.CacheBackend, cfg.RedisURL, cfg.RedisPasswordFile = config.BackendRedis, "redis://go-service@127.0.0.1:1/0", file
		err := Serve(t.Context(), listen(t), cfg, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "-redis-password-file") {
			t.Errorf("Serve with password file %s = %v, want an error naming -redis-password-file", file, err)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to log into.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestServeRejectsInvalidCacheSettings(t *testing.T) {
	cfg := testConfig()
	cfg.CacheMaxEntries = 0
	ln := listen(t)
	if err := Serve(t.Context(), ln, cfg, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("Serve accepted a zero-entry cache")
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("Serve left the listener open")
	}
}

func TestRunFailsWhenTheAddressIsTaken(t *testing.T) {
	taken := listen(t)
	defer taken.Close()
	cfg := testConfig()
	cfg.Listen = taken.Addr().String()
	if err := Run(t.Context(), cfg, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("Run succeeded on an address already in use")
	}
}

func TestRunReturnsNilWhenItsContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Run(ctx, testConfig(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}
