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
	"sync"
	"sync/atomic"
	"time"

	"cacheplatform/go_service/internal/cache"
	"cacheplatform/go_service/internal/config"
	"cacheplatform/go_service/internal/httpapi"
	"cacheplatform/go_service/internal/metrics"
)

// Connection limits. Every route answers from memory, so these only need
// to stop slow or idle clients from holding connections open.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
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
		TTL:             cfg.CacheTTL,
		JanitorInterval: cfg.JanitorInterval,
	})
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	registry := metrics.NewRegistry()
	if err := metrics.RegisterCache(registry, store.Stats); err != nil {
		return errors.Join(err, ln.Close())
	}
	httpMetrics, err := metrics.NewHTTP(registry)
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	var ready atomic.Bool
	handler := httpapi.New(httpapi.Config{
		Cache:    store,
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

// serveHTTP serves handler on ln with ready set until ctx is done, then
// clears ready and shuts the server down gracefully.
func serveHTTP(ctx context.Context, ln net.Listener, handler http.Handler, ready *atomic.Bool, shutdownTimeout time.Duration, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	// Ready before the first request can be accepted, so /readyz never
	// reports a running server as not ready.
	ready.Store(true)
	go func() { served <- srv.Serve(ln) }()
	logger.InfoContext(ctx, "serving", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-served:
		ready.Store(false)
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}

	ready.Store(false)
	logger.InfoContext(ctx, "draining", slog.Duration("timeout", shutdownTimeout))
	// ctx is already done; the drain gets its own deadline.
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		return fmt.Errorf("draining: %w", errors.Join(err, srv.Close()))
	}
	<-served // http.ErrServerClosed, now that Shutdown has returned
	logger.InfoContext(ctx, "stopped")
	return nil
}
