package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
)

func archiveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Work on the archive a config names (prune, list)",
	}
	cmd.AddCommand(archivePruneCmd(), archiveListCmd())
	return cmd
}

func loadArchive(cmd *cobra.Command, configPath string) (*edgeagent.Config, archive.Store, error) {
	if configPath == "" {
		configPath = os.Getenv("TRIBUTARY_CONFIG")
	}
	if configPath == "" {
		return nil, nil, fmt.Errorf("--config is required")
	}
	cfg, err := edgeagent.LoadConfig(configPath)
	if err != nil {
		return nil, nil, err
	}
	store, err := edgeagent.OpenArchive(cmd.Context(), cfg.Archive, newLogger("warn", "text"))
	if err != nil {
		return nil, nil, err
	}
	return cfg, store, nil
}

func archivePruneCmd() *cobra.Command {
	var (
		configPath string
		stream     string
		olderThan  string
		dryRun     bool
	)
	cmd := &cobra.Command{
		Use:   "prune --config FILE",
		Short: "Delete archived fragments older than each stream's retention",
		Long: `Delete archived fragments (whole UTC hours) older than each stream's retention
(streams[].retention, else archive.retention), or than --older-than for every
stream given. Prints what it deleted as JSON. The agent runs the same job every
hour; this command is for archives no agent prunes (or for a cron job).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, store, err := loadArchive(cmd, configPath)
			if err != nil {
				return err
			}
			var override time.Duration
			if olderThan != "" {
				if override, err = edgeagent.ParseDuration(olderThan); err != nil || override <= 0 {
					return fmt.Errorf("--older-than: %q is not a duration such as 30d or 720h", olderThan)
				}
			}
			layout := archive.Layout{Prefix: cfg.Archive.Prefix}
			out := map[string]archive.PruneResult{}
			for _, sc := range cfg.Streams {
				if stream != "" && sc.Name != stream {
					continue
				}
				keep := time.Duration(sc.Retention)
				if override > 0 {
					keep = override
				}
				if keep <= 0 {
					continue
				}
				res, err := archive.Prune(cmd.Context(), store, layout, sc.Name, time.Now().Add(-keep), dryRun)
				if err != nil {
					return err
				}
				out[sc.Name] = res
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configPath, "config", "c", "", "agent YAML config (or TRIBUTARY_CONFIG)")
	f.StringVar(&stream, "stream", "", "only this stream")
	f.StringVar(&olderThan, "older-than", "", "override the retention (30d, 720h)")
	f.BoolVar(&dryRun, "dry-run", false, "count what would be deleted, delete nothing")
	return cmd
}

func archiveListCmd() *cobra.Command {
	var (
		configPath string
		stream     string
		start, end string
		selector   string
		limit      int
	)
	cmd := &cobra.Command{
		Use:   "list --config FILE --stream NAME",
		Short: "List a stream's archived fragments (ListFragments) as JSON lines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, store, err := loadArchive(cmd, configPath)
			if err != nil {
				return err
			}
			req := archive.ListRequest{Stream: stream, Selector: selector, Limit: 1000}
			if req.Start, err = parseTimeFlag("--start", start); err != nil {
				return err
			}
			if req.End, err = parseTimeFlag("--end", end); err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			n := 0
			for {
				res, err := archive.ListFragments(cmd.Context(), store, archive.Layout{Prefix: cfg.Archive.Prefix}, req)
				if err != nil {
					return err
				}
				for _, m := range res.Fragments {
					if limit > 0 && n >= limit {
						return nil
					}
					if err := enc.Encode(m); err != nil {
						return err
					}
					n++
				}
				if res.NextToken == "" {
					return nil
				}
				req.Token = res.NextToken
			}
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configPath, "config", "c", "", "agent YAML config (or TRIBUTARY_CONFIG)")
	f.StringVar(&stream, "stream", "", "stream name (required)")
	f.StringVar(&start, "start", "", "RFC 3339 time or a duration ago (1h); default: the beginning")
	f.StringVar(&end, "end", "", "RFC 3339 time or a duration ago; default: now")
	f.StringVar(&selector, "selector", "producer", "producer or server timestamps")
	f.IntVar(&limit, "limit", 0, "stop after this many fragments (0: all)")
	_ = cmd.MarkFlagRequired("stream")
	return cmd
}

// parseTimeFlag reads an RFC 3339 time or a duration before now.
func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := edgeagent.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s: %q is neither an RFC 3339 time nor a duration such as 1h", name, v)
}
