// Command tracker is the Web Tracker service: it takes page views over HTTP
// and answers how many distinct visitors each page had.
//
// Run it with -h for its flags; each flag can also be set by an environment
// variable TRACKER_<NAME>, e.g. -addr by TRACKER_ADDR.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // the zones of time ranges, on machines without a zone database
)

// version is stamped at build time by the Makefile (-ldflags -X).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, let a second one end the process at once
		// instead of waiting out a graceful shutdown.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "tracker: %v\n", err)
		os.Exit(1)
	}
}
