// Package procs sizes GOMAXPROCS to the load. An agent recording cameras
// does many small pieces of work (a read, a few packets) spread over the
// second; with more Ps than it needs, the Go scheduler spends a good part of
// its CPU spinning and stealing work between them. Measured with 50 cameras
// at 4 Mbit/s on 2 cores: 0.29% of a core per camera with GOMAXPROCS=1
// against 0.41% with 2. The Governor starts at one P and adds one when the
// process uses most of the Ps it has, and takes one away when it has been
// using much less for a while.
package procs

import (
	"context"
	"log/slog"
	"runtime"
	"syscall"
	"time"
)

// Governor adjusts GOMAXPROCS to the process's CPU use.
type Governor struct {
	// Max is the most Ps it sets. Default the GOMAXPROCS the runtime chose
	// (the CPUs, or the container's CPU limit).
	Max int
	// Interval between measurements. Default 2s.
	Interval time.Duration
	// Up is the use, as a fraction of the current Ps, above which a P is
	// added. Default 0.7.
	Up float64
	// Down is the use, as a fraction of one P fewer, below which a P is
	// removed after Calm measurements in a row. Defaults 0.5 and 5.
	Down float64
	Calm int
	// Logger receives the changes. Default slog.Default().
	Logger *slog.Logger
	// OnChange, if set, is told each new GOMAXPROCS (for a metric).
	OnChange func(int)

	cpu func() time.Duration // process CPU time; tests replace it
}

// Run adjusts GOMAXPROCS until ctx ends, then gives it back to the
// runtime's own choice (which follows container CPU limits).
func (g *Governor) Run(ctx context.Context) {
	if g.Max <= 0 {
		g.Max = runtime.GOMAXPROCS(0)
	}
	if g.Interval <= 0 {
		g.Interval = 2 * time.Second
	}
	if g.Up <= 0 {
		g.Up = 0.7
	}
	if g.Down <= 0 {
		g.Down = 0.5
	}
	if g.Calm <= 0 {
		g.Calm = 5
	}
	if g.Logger == nil {
		g.Logger = slog.Default()
	}
	if g.cpu == nil {
		g.cpu = processCPU
	}
	defer runtime.SetDefaultGOMAXPROCS()
	g.set(1)
	t := time.NewTicker(g.Interval)
	defer t.Stop()
	lastCPU, lastAt := g.cpu(), time.Now()
	calm := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cpu := g.cpu()
			use := float64(cpu-lastCPU) / float64(now.Sub(lastAt)) // in cores
			lastCPU, lastAt = cpu, now
			if next := g.next(use, runtime.GOMAXPROCS(0), &calm); next != runtime.GOMAXPROCS(0) {
				g.Logger.Info("GOMAXPROCS changed", "from", runtime.GOMAXPROCS(0), "to", next, "cpu_cores", use)
				g.set(next)
			}
		}
	}
}

// next is the decision: the Ps to have given the use (in cores) over the
// last interval and the current Ps.
func (g *Governor) next(use float64, cur int, calm *int) int {
	switch {
	case use > g.Up*float64(cur) && cur < g.Max:
		*calm = 0
		return cur + 1
	case cur > 1 && use < g.Down*float64(cur-1):
		*calm++
		if *calm >= g.Calm {
			*calm = 0
			return cur - 1
		}
	default:
		*calm = 0
	}
	return cur
}

func (g *Governor) set(n int) {
	runtime.GOMAXPROCS(n)
	if g.OnChange != nil {
		g.OnChange(n)
	}
}

// processCPU returns the user and system time of the process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
