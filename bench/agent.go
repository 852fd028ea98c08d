package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
)

// pruneAge is how long the bench keeps fragments in a local archive.
const pruneAge = 20 * time.Second

// agentConfig writes the agent's configuration for the cameras.
func agentConfig(o Options, urls []string, listen, archiveURL string) (string, error) {
	cfg := map[string]any{
		"data_dir": filepath.Join(o.WorkDir, "agent"),
		"http":     map[string]any{"listen": listen, "pprof": o.Pprof},
		"log":      map[string]any{"level": "warn"},
		"api":      map[string]any{"auth": "none"},
		"putmedia": map[string]any{"enabled": false},
		"defaults": map[string]any{"container": o.Container},
	}
	if o.Source == SourceWHIP {
		// streams are made by their publishers' first POST
		cfg["putmedia"] = map[string]any{"enabled": true, "auth": "none", "allow_new_streams": true}
		cfg["webrtc"] = map[string]any{"loopback": true, "max_publishers": max(o.Streams, 16)}
	}
	if archiveURL != "" {
		ac, err := edgeagent.ParseArchiveURL(archiveURL)
		if err != nil {
			return "", fmt.Errorf("bench: archive: %w", err)
		}
		cfg["archive"] = ac
	}
	var streams []map[string]any
	for i, u := range urls {
		streams = append(streams, map[string]any{"name": fmt.Sprintf("cam%d", i+1), "url": u, "transport": "tcp"})
	}
	cfg["streams"] = streams
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(o.WorkDir, "agent.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", err
	}
	if _, err := edgeagent.LoadConfig(path); err != nil {
		return "", fmt.Errorf("bench: the agent's configuration: %w", err)
	}
	return path, nil
}

// freeAddr returns a free loopback TCP address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// agentStatus is what the bench reads of /v1/status.
type agentStatus struct {
	Streams []edgeagent.StreamStatus `json:"streams"`
}

func getStatus(ctx context.Context, base string, since time.Time) (agentStatus, error) {
	u := base + "/v1/status"
	if !since.IsZero() {
		u += "?latency_since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return agentStatus{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return agentStatus{}, fmt.Errorf("bench: %s: %s", u, res.Status)
	}
	var st agentStatus
	return st, json.NewDecoder(res.Body).Decode(&st)
}

func sumCounters(st agentStatus) counters {
	var c counters
	for _, s := range st.Streams {
		k := s.Counters
		c.packets += k.Packets
		c.lost += k.PacketsLost
		c.dropped += k.DroppedSamples + k.DroppedQueueFull + k.DroppedNoParams
		c.fragments += k.Fragments
		c.fragmentsLost += k.FragmentsLost
		c.reconnects += k.Reconnects
	}
	return c
}

// runAgent measures the agent recording the cameras.
func runAgent(ctx context.Context, o Options, pr *progress, urls []string, camsim int, publish func(base string) (*proc, error)) (Row, error) {
	listen, err := freeAddr()
	if err != nil {
		return Row{}, err
	}
	archiveURL, pruneDir := "", filepath.Join(o.WorkDir, "agent", "archive")
	var env []string
	switch {
	case o.Archive == "s3":
		u, dir, gw, err := startS3(ctx, o)
		if err != nil {
			return Row{}, err
		}
		defer gw.stop()
		archiveURL, pruneDir = u, dir
		env = []string{"AWS_ACCESS_KEY_ID=" + s3Access, "AWS_SECRET_ACCESS_KEY=" + s3Secret}
	case o.Archive != "dir":
		archiveURL, pruneDir = o.Archive, ""
	}
	cfgPath, err := agentConfig(o, urls, listen, archiveURL)
	if err != nil {
		return Row{}, err
	}
	cmd := exec.CommandContext(ctx, o.Exe, "agent", "--config", cfgPath)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	p, err := start(cmd, filepath.Join(o.WorkDir, "agent.log"))
	if err != nil {
		return Row{}, err
	}
	defer p.stop()
	alive := func() error {
		if p.exited() {
			return fmt.Errorf("bench: the agent exited (%v): %s", p.err, p.tail())
		}
		return nil
	}
	base := "http://" + listen
	if o.Pprof {
		pr.done("tributary: profiler at %s/debug/pprof/", base)
	}

	if publish != nil {
		pub, err := publish(base)
		if err != nil {
			return Row{}, err
		}
		defer pub.stop()
		camsim = pub.cmd.Process.Pid
	}

	pctx, stopPrune := context.WithCancel(ctx)
	defer stopPrune()
	if pruneDir != "" {
		go prune(pctx, pruneDir)
	}

	// every stream has stored a fragment
	deadline := time.Now().Add(60*time.Second + time.Duration(o.Streams)*100*time.Millisecond)
	for {
		if err := alive(); err != nil {
			return Row{}, err
		}
		st, err := getStatus(ctx, base, time.Time{})
		ready := 0
		if err == nil {
			for _, s := range st.Streams {
				if s.Counters.Fragments > 0 {
					ready++
				}
			}
		}
		pr.printf("tributary: %d/%d streams recording", ready, o.Streams)
		if ready == o.Streams {
			break
		}
		if time.Now().After(deadline) {
			return Row{}, fmt.Errorf("bench: only %d of %d streams stored a fragment in time; agent log: %s", ready, o.Streams, p.tail())
		}
		select {
		case <-ctx.Done():
			return Row{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	w := window{
		o: o, p: pr, camsim: camsim, name: "tributary", pids: func() []int { return []int{p.cmd.Process.Pid} }, alive: alive,
		counters: func() (counters, error) {
			st, err := getStatus(ctx, base, time.Time{})
			return sumCounters(st), err
		},
	}
	// the agent keeps the last 256 latencies per stream (8.5 min of 2 s
	// fragments): collect them every 2 minutes so long windows lose none
	seen := map[string]map[time.Time]float64{}
	var seenMu sync.Mutex
	collect := func(since time.Time) error {
		st, err := getStatus(ctx, base, since)
		if err != nil {
			return err
		}
		seenMu.Lock()
		defer seenMu.Unlock()
		for _, s := range st.Streams {
			if seen[s.Name] == nil {
				seen[s.Name] = map[time.Time]float64{}
			}
			for _, l := range s.DurableLatency {
				seen[s.Name][l.Closed] = l.MS
			}
		}
		return nil
	}
	began := time.Now()
	cctx, stopCollect := context.WithCancel(ctx)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		every(cctx, 2*time.Minute, func() { collect(began) })
	}()
	m, err := w.run(ctx)
	stopCollect()
	<-collected
	if err != nil {
		return Row{}, err
	}
	row := m.row("tributary", o.Streams)
	// the fragments closed at the end of the window may not be durable yet,
	// and they are the slow ones: give them time to be counted
	time.Sleep(2 * time.Second)
	if err := collect(m.start); err != nil {
		return Row{}, err
	}
	var ms []float64
	end := m.start.Add(m.elapsed)
	for _, bySeen := range seen {
		for closed, v := range bySeen {
			if !closed.Before(m.start) && !closed.After(end) {
				ms = append(ms, v)
			}
		}
	}
	latencies(ms, &row)
	return row, nil
}

// prune deletes the local archive's fragments (and their sidecars) older
// than pruneAge every few seconds: 200 cameras at 4 Mbit/s write 100 MB/s.
func prune(ctx context.Context, root string) {
	every(ctx, 5*time.Second, func() {
		cut := time.Now().Add(-pruneAge)
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || ctx.Err() != nil {
				return nil
			}
			if d.IsDir() {
				if d.Name() == archive.LocalMetaDir {
					return filepath.SkipDir // sidecars go with their objects
				}
				return nil
			}
			if !strings.HasSuffix(d.Name(), ".m4s") && !strings.HasSuffix(d.Name(), ".mkv") {
				return nil
			}
			if info, err := d.Info(); err == nil && info.ModTime().Before(cut) {
				// the object first: a listing never sees it without its record
				if os.Remove(path) == nil {
					if rel, err := filepath.Rel(root, path); err == nil {
						os.Remove(filepath.Join(root, archive.LocalMetaDir, rel+".json"))
					}
				}
			}
			return nil
		})
	})
}

// every calls f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
