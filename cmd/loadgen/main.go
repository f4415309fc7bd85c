// Command loadgen measures the tracker against a bare net/http server on
// loopback. It starts both as child processes, drives each in turn with the
// same load from raw keep-alive connections, and reports every figure as a
// ratio to the bare server measured in the same run: on a shared, noisy
// machine an absolute request rate means little from one run to the next,
// while the ratio to a baseline measured minutes apart holds.
//
// Build the tracker first, then run it from the repository root:
//
//	make build && go run ./cmd/loadgen
//
// Run it with -h for its flags. Progress goes to stderr, a table to stdout,
// and every figure to a JSON file (-out).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}
