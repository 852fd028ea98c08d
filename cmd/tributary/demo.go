package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-io/tributary/internal/demo"
)

func demoCmd() *cobra.Command {
	var (
		o         demo.Options
		procsFlag string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run synthetic cameras, the agent and a local archive with no setup",
		Long: `Run the whole pipeline on embedded defaults: two synthetic RTSP cameras, the
edge agent pulling them, and a local-directory archive in ./tributary-data.
Progress is printed every few seconds; Ctrl-C stops cleanly, as does --duration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Out = cmd.OutOrStdout()
			if err := startProcs(cmd.Context(), procsFlag, newLogger("warn", "text")); err != nil {
				return err
			}
			return demo.Run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data", "./tributary-data", "data directory (archive, state, clips)")
	f.DurationVar(&o.Duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "HTTP address of the agent")
	f.StringVar(&o.Archive, "archive", "", "archive: a directory, or s3://BUCKET[/PREFIX]?endpoint=HOST:PORT[&create_bucket=true] with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment (default: DATA/archive)")
	f.DurationVar(&o.Progress, "progress", 5*time.Second, "progress interval")
	addProcsFlag(cmd, &procsFlag)
	return cmd
}
