package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/inference"
)

// loadConfig reads --config or TRIBUTARY_CONFIG.
func loadConfig(path string) (*edgeagent.Config, error) {
	if path == "" {
		path = os.Getenv("TRIBUTARY_CONFIG")
	}
	if path == "" {
		return nil, fmt.Errorf("--config is required")
	}
	return edgeagent.LoadConfig(path)
}

func consumeCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "consume --config FILE",
		Short: "Run the inference hooks placed \"archive\" over the archive's fragments, in order",
		Long: `Run the inference hooks of the config whose placement is "archive" over the
fragments in the archive: per stream in order, checkpointing after each
fragment in _system/checkpoints/{group}/, so a restart resumes where it
stopped (the fragment in flight is sent again, with the same idempotency
key). Consumers of one group share the shards of _system/shards.json through
leases in _system/leases/{group}/ (conditional writes on the object store);
a dead consumer's shards are taken over within twice inference.consumer.
lease_ttl. With inference.consumer.local: true, one consumer takes every
shard without leases. The config is the agent's format: archive,
inference.hooks and inference.consumer are read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
			log := newLogger(cfg.Log.Level, cfg.Log.Format).With("component", "consumer")
			store, err := edgeagent.OpenArchive(cmd.Context(), cfg.Archive, log)
			if err != nil {
				return err
			}
			layout := archive.Layout{Prefix: cfg.Archive.Prefix}
			records := &inference.Records{Store: store, Layout: layout}
			cc := cfg.Inference.Consumer
			c := &inference.Consumer{
				Store: store, Layout: layout, Group: cc.Group, ID: cc.ID, Local: cc.Local,
				LeaseTTL: time.Duration(cc.LeaseTTL), Poll: time.Duration(cc.Poll), Workers: cc.Workers,
				Lookback: time.Duration(cc.Lookback), Logger: log,
			}
			for _, h := range cfg.Inference.Hooks {
				if h.Placement == inference.PlacementArchive {
					c.Invokers = append(c.Invokers, &inference.Invoker{Hook: h, Records: records, Logger: log.With("model", h.Model)})
				}
			}
			if len(c.Invokers) == 0 {
				return errors.New("inference.hooks: no hook with placement: archive")
			}
			err = c.Run(cmd.Context())
			st := c.Stats()
			log.Info("consumer stopped", "processed", st.Processed, "dead_letters", st.DeadLetters, "failed", st.Failed)
			return err
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "YAML config file (or TRIBUTARY_CONFIG)")
	return cmd
}

func shardsCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "shards",
		Short: "Show, split or merge the consumers' shards",
		Long: `Show, split or merge the shards consumers lease (_system/shards.json in the
archive). A split closes a shard and opens two children, each with half its
hash range; a merge closes two adjacent shards and opens one child. A child
starts only once its parents are drained, so each stream's fragments stay in
order across a reshard.`,
	}
	cmd.PersistentFlags().StringVarP(&configPath, "config", "c", "", "YAML config file (or TRIBUTARY_CONFIG): its archive is used")
	open := func(cmd *cobra.Command) (*inference.Shards, error) {
		cfg, err := loadConfig(configPath)
		if err != nil {
			return nil, err
		}
		store, err := edgeagent.OpenArchive(cmd.Context(), cfg.Archive, newLogger("warn", "text"))
		if err != nil {
			return nil, err
		}
		return &inference.Shards{Store: store, Layout: archive.Layout{Prefix: cfg.Archive.Prefix}}, nil
	}
	show := func(cmd *cobra.Command, m *inference.ShardMap) error {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "Print the shard map", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ss, err := open(cmd)
			if err != nil {
				return err
			}
			m, _, err := ss.Load(cmd.Context())
			if err != nil {
				return err
			}
			return show(cmd, m)
		},
	}, &cobra.Command{
		Use: "split SHARD", Short: "Split an open shard in two", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ss, err := open(cmd)
			if err != nil {
				return err
			}
			m, err := ss.Update(cmd.Context(), func(m *inference.ShardMap) error {
				_, err := m.Split(args[0], time.Now())
				return err
			})
			if err != nil {
				return err
			}
			return show(cmd, m)
		},
	}, &cobra.Command{
		Use: "merge SHARD SHARD", Short: "Merge two adjacent open shards", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ss, err := open(cmd)
			if err != nil {
				return err
			}
			m, err := ss.Update(cmd.Context(), func(m *inference.ShardMap) error {
				_, err := m.Merge(args[0], args[1], time.Now())
				return err
			})
			if err != nil {
				return err
			}
			return show(cmd, m)
		},
	})
	return cmd
}
