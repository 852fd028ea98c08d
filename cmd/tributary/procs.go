package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/tributary-io/tributary/internal/procs"
)

// addProcsFlag adds --procs to a long-running command.
func addProcsFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "procs", "auto", `Go scheduler threads (GOMAXPROCS): "auto" sizes them to the load, starting at 1; N fixes them; the GOMAXPROCS variable wins`)
}

// agentGCPercent is the garbage collector's target for long-running
// commands unless GOGC is set. Ingest allocates nearly nothing per packet
// and sample memory lives outside the Go heap, so the heap is mostly
// long-lived buffers: with the default of 100 it would grow to twice them
// before a collection (about 40 MB more at 100 cameras), while at 25 a
// collection comes every few seconds and costs well under 0.1% of a core.
const agentGCPercent = 25

// startProcs applies --procs: a fixed GOMAXPROCS, or a Governor running
// until ctx ends. GOMAXPROCS in the environment leaves everything as is.
// It also sets the garbage collector's target (agentGCPercent) unless GOGC
// is set.
func startProcs(ctx context.Context, v string, log *slog.Logger) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(agentGCPercent)
	}
	if os.Getenv("GOMAXPROCS") != "" {
		return nil
	}
	if v == "auto" || v == "" {
		g := &procs.Governor{Logger: log.With("component", "procs")}
		go g.Run(ctx)
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return fmt.Errorf("--procs: %q is not auto or a number of at least 1", v)
	}
	runtime.GOMAXPROCS(n)
	return nil
}
