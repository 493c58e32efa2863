// Command loadgen sends a bounded HTTP load and prints what it measured as JSON:
//
//	loadgen -connections 50 -duration 10s http://127.0.0.1/go/time [more URLs, taken in turn]
//	loadgen -rate 2000 -duration 10s http://127.0.0.1/go/time   (open loop: a fixed offered rate)
//
// Used by the benchmark (tools/dev/bench) and the fault tests (deploy/). Exits 2 on bad flags,
// 1 if the run could not be made; a run with failed requests still exits 0: callers judge.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cacheplatform/tools/testing/internal/load"
)

func main() {
	config := load.Config{}
	flag.IntVar(&config.Connections, "connections", 50, "concurrent keep-alive connections, one request at a time each (with -rate: the workers to start with)")
	flag.DurationVar(&config.Duration, "duration", 10*time.Second, "how long to send (at most "+load.MaxDuration.String()+")")
	flag.Uint64Var(&config.MaxRequests, "max-requests", 10_000_000, "stop once this many requests were sent")
	flag.DurationVar(&config.Timeout, "timeout", 10*time.Second, "per-request timeout")
	flag.Float64Var(&config.Rate, "rate", 0, "open loop: start this many requests per second whatever the answers do, adding connections while all are busy (0: closed loop)")
	flag.StringVar(&config.TallyHeader, "tally-header", "", "count answers by target, code and this response header's value (report: answers)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: loadgen [flags] URL...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	config.Targets = flag.Args()
	if err := config.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		flag.Usage()
		os.Exit(2)
	}

	// Ctrl-C ends the run early; the report covers what was sent.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := load.Run(ctx, config)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", "  ")
	if err := encoder.Encode(report); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}
