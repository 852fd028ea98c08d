package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/tributary-io/tributary/internal/procs"
)

// addProcsFlag adds --procs to a long-running command.
func addProcsFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "procs", "auto", `Go scheduler threads (GOMAXPROCS): "auto" sizes them to the load, starting at 1; N fixes them; the GOMAXPROCS variable wins`)
}

// startProcs applies --procs: a fixed GOMAXPROCS, or a Governor running
// until ctx ends. GOMAXPROCS in the environment leaves everything as is.
func startProcs(ctx context.Context, v string, log *slog.Logger) error {
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
