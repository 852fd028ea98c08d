package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	edgeagent "github.com/tributary-io/tributary/edge-agent"
)

func agentCmd() *cobra.Command {
	var configPath, procsFlag string
	cmd := &cobra.Command{
		Use:   "agent --config FILE",
		Short: "Run the edge agent: pull the configured cameras and archive their fragments",
		Long: `Run the edge agent. The YAML config names the streams to pull, the archive and
the HTTP address of /v1/status, /healthz and /metrics. Every scalar key can be
overridden from the environment as TRIBUTARY_<KEY_PATH> (TRIBUTARY_HTTP_LISTEN,
TRIBUTARY_STREAMS_0_URL). SIGINT or SIGTERM closes the fragments in progress,
stores them and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				configPath = os.Getenv("TRIBUTARY_CONFIG")
			}
			if configPath == "" {
				return fmt.Errorf("--config is required")
			}
			cfg, err := edgeagent.LoadConfig(configPath)
			if err != nil {
				return err
			}
			a := &edgeagent.Agent{Config: cfg, Logger: newLogger(cfg.Log.Level, cfg.Log.Format)}
			if err := startProcs(cmd.Context(), procsFlag, a.Logger); err != nil {
				return err
			}
			if err := a.Start(cmd.Context()); err != nil {
				return err
			}
			<-cmd.Context().Done()
			a.Logger.Info("stopping: closing fragments in progress")
			return a.Close()
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "YAML config file (or TRIBUTARY_CONFIG)")
	addProcsFlag(cmd, &procsFlag)
	return cmd
}
