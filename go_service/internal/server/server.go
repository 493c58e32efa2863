// Package server assembles the service (cache, metrics, HTTP handler) and
// runs it until its context is done, then drains in-flight requests.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cacheplatform/go_service/internal/buildinfo"
	"cacheplatform/go_service/internal/cache"
	"cacheplatform/go_service/internal/config"
	"cacheplatform/go_service/internal/httpapi"
	"cacheplatform/go_service/internal/metrics"
	"cacheplatform/go_service/internal/redact"
	"cacheplatform/go_service/internal/sharedcache"
)

// Connection limits. Every route answers from memory, so these only need
// to stop slow or idle clients from holding connections open.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// keepAliveLinger is how long a stopping server keeps a kept-alive
	// connection that has not sent a request since the stop began. A client
	// may be sending its next request on it already: within the linger that
	// request is answered (with "Connection: close", RFC 9112 section 9.6)
	// instead of meeting a closed connection. gunicorn 27's gthread worker
	// lingers as long (STOP_KEEPALIVE_LINGER), so both services drain alike.
	keepAliveLinger = 2 * time.Second
)

// Run listens on cfg.Listen and serves until ctx is done; see Serve.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return err
	}
	return Serve(ctx, ln, cfg, logger)
}

// Serve runs the service on ln, which it closes, until ctx is done. Then it
// reports not ready, stops the cache janitor and waits up to
// cfg.ShutdownTimeout for in-flight requests. It returns nil after a clean
// drain.
func Serve(ctx context.Context, ln net.Listener, cfg config.Config, logger *slog.Logger) error {
	store, err := cache.New[string, string](cache.Options{
		MaxEntries:      cfg.CacheMaxEntries,
		TTL:             cfg.CacheL1TTL,
		JanitorInterval: cfg.JanitorInterval,
	})
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	registry := metrics.NewRegistry()
	if err := metrics.RegisterBuildInfo(registry, buildinfo.Version, buildinfo.Revision); err != nil {
		return errors.Join(err, ln.Close())
	}
	if err := metrics.RegisterCache(registry, store.Stats); err != nil {
		return errors.Join(err, ln.Close())
	}
	httpMetrics, err := metrics.NewHTTP(registry)
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	fills, err := metrics.NewCacheFills(registry, httpapi.CachedKeys())
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	shared, closeShared, err := newSharedTier(cfg, registry, logger)
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	defer closeShared()
	var ready atomic.Bool
	handler := httpapi.New(httpapi.Config{
		Cache:    store,
		Shared:   shared,
		Fills:    fills,
		Now:      time.Now,
		Ready:    ready.Load,
		Metrics:  httpMetrics,
		Gatherer: registry,
		Logger:   logger,
	})

	var janitor sync.WaitGroup
	janitor.Go(func() { store.Run(ctx) })
	defer janitor.Wait()

	return serveHTTP(ctx, ln, handler, &ready, cfg.ShutdownTimeout, logger)
}

// Shared-tier settings that need no knob: a fill (formatting the time)
// takes microseconds, so a lease held longer than leaseWait belongs to a
// replica that died or stalls, and waiting replicas then fill the key
// themselves. Polling every pollInterval adds at most that much to a
// waiting request.
// A stored entry is a nanosecond stamp and a value of at most a few dozen bytes (the static
// text, a time); maxEntryBytes leaves room for values fifty times that, and bounds what a lookup
// reads from Redis whatever another writer put there.
const (
	leaseWait     = 250 * time.Millisecond
	pollInterval  = 5 * time.Millisecond
	maxEntryBytes = 4 << 10
)

// newSharedTier returns the Redis tier of the redis backend, with its
// metrics registered on reg, and a function closing its connections; nil
// and a no-op for the memory backend. No connection is made here: the
// service starts and serves whether Redis is up or not.
func newSharedTier(cfg config.Config, reg prometheus.Registerer, logger *slog.Logger) (*sharedcache.Tier, func(), error) {
	if cfg.CacheBackend != config.BackendRedis {
		return nil, func() {}, nil
	}
	sharedcache.SetLogger(logger)
	password, err := readSecret(cfg.RedisPasswordFile)
	if err != nil {
		return nil, nil, err
	}
	client, err := sharedcache.NewClient(cfg.RedisURL, password, cfg.RedisTimeout)
	if err != nil {
		return nil, nil, err
	}
	// The URL without its userinfo: it may carry a password.
	logger.Info("shared cache", slog.String("redis", redact.URL(cfg.RedisURL)), slog.Bool("password_file", password != ""))
	closeClient := func() { _ = client.Close() }
	tier, err := sharedcache.New(sharedcache.Options{
		Client:        client,
		Prefix:        "go_service:v1:",
		TTL:           cfg.CacheTTL,
		Timeout:       cfg.RedisTimeout,
		LeaseWait:     min(leaseWait, cfg.CacheTTL),
		PollInterval:  pollInterval,
		MaxEntryBytes: maxEntryBytes,
		Logger:        logger,
	})
	if err == nil {
		err = metrics.RegisterSharedCache(reg, tier.Stats)
	}
	if err != nil {
		closeClient()
		return nil, nil, err
	}
	return tier, closeClient, nil
}

// readSecret returns the one line in path (a mounted secret: a trailing newline is not part of
// it), "" for no path. Its content never appears in an error.
func readSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("-redis-password-file: %w", err)
	}
	secret := strings.TrimRight(string(b), "\r\n")
	if secret == "" || strings.ContainsAny(secret, "\r\n") {
		return "", fmt.Errorf("-redis-password-file %s: want one non-empty line", path)
	}
	return secret, nil
}

// serveHTTP serves handler on ln with ready set until ctx is done, then
// drains:
//
//  1. ready is cleared and ln closed at once: a new connection is refused
//     (a client or proxy may retry elsewhere), never queued to be reset later;
//  2. every response from then on carries "Connection: close", so each busy
//     keep-alive connection closes after its next answer, by the client's
//     own reading of it;
//  3. after keepAliveLinger, or once no connection is left, http.Server's
//     Shutdown closes the connections still idle and waits for active ones,
//     up to shutdownTimeout in all.
//
// Shutdown alone (its step 1 closes idle connections at once) would drop a
// request that a client sends on an idle connection as the stop begins.
// What stays inherent to TCP: a connection the kernel completed just before
// ln closed, not yet accepted, is reset; the request on it was never read.
func serveHTTP(ctx context.Context, ln net.Listener, handler http.Handler, ready *atomic.Bool, shutdownTimeout time.Duration, logger *slog.Logger) error {
	var draining atomic.Bool
	var conns connCounter
	srv := &http.Server{
		Handler:           closeWhenDraining(handler, &draining),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnState:         conns.track,
	}
	listener := &closeOnceListener{Listener: ln}
	served := make(chan error, 1)
	// Ready before the first request can be accepted, so /readyz never
	// reports a running server as not ready.
	ready.Store(true)
	go func() { served <- srv.Serve(listener) }()
	logger.InfoContext(ctx, "serving", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-served:
		ready.Store(false)
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}

	ready.Store(false)
	// The listener closes before the first "Connection: close": a client
	// told to reconnect must be refused, not queued on a listener about to
	// close, which would reset it after it sent its request.
	if err := listener.Close(); err != nil {
		logger.WarnContext(ctx, "closing the listener", slog.Any("error", err))
	}
	draining.Store(true)
	logger.InfoContext(ctx, "draining", slog.Duration("timeout", shutdownTimeout))
	// ctx is already done; the drain gets its own deadline.
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	conns.waitForNone(drainCtx, keepAliveLinger)
	if err := srv.Shutdown(drainCtx); err != nil {
		return fmt.Errorf("draining: %w", errors.Join(err, srv.Close()))
	}
	<-served // http.ErrServerClosed or the closed listener's error, now that Shutdown has returned
	logger.InfoContext(ctx, "stopped")
	return nil
}

// closeWhenDraining answers with "Connection: close" once draining is set;
// net/http then closes the connection after the response.
func closeWhenDraining(next http.Handler, draining *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// closeOnceListener lets serveHTTP close the listener before Shutdown does:
// the second Close is a no-op rather than an error from Shutdown.
type closeOnceListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *closeOnceListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// connCounter counts the server's open connections (http.Server.ConnState).
type connCounter struct {
	mu   sync.Mutex
	open int
	none chan struct{} // closed when open drops to 0 during a wait
}

func (c *connCounter) track(_ net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch state {
	case http.StateNew:
		c.open++
	case http.StateClosed, http.StateHijacked:
		c.open--
		if c.open == 0 && c.none != nil {
			close(c.none)
			c.none = nil
		}
	}
}

// waitForNone returns once no connection is open, after limit, or when ctx
// is done, whichever comes first.
func (c *connCounter) waitForNone(ctx context.Context, limit time.Duration) {
	c.mu.Lock()
	if c.open == 0 {
		c.mu.Unlock()
		return
	}
	none := make(chan struct{})
	c.none = none
	c.mu.Unlock()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-none:
	case <-timer.C:
	case <-ctx.Done():
	}
}
