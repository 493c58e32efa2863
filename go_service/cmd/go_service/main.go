// Command go_service is the cache platform's Go HTTP service. Its image's
// healthcheck is the shared probe (tools/rules/oci/probe) on GET /healthz.
//
// Exit codes: 0 success, 1 failure, 2 invalid configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"cacheplatform/go_service/internal/config"
	"cacheplatform/go_service/internal/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main with its inputs and outputs passed in; it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := config.Parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "go_service: %v\nRun go_service -h for usage.\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := server.Run(ctx, cfg, logger); err != nil {
		logger.ErrorContext(ctx, "server stopped with an error", slog.Any("error", err))
		return 1
	}
	return 0
}
