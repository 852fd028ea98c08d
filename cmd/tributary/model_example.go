package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-io/tributary/inference"
)

func modelExampleCmd() *cobra.Command {
	var listen, name string
	cmd := &cobra.Command{
		Use:   "model-example",
		Short: "Serve the example model endpoint (SageMaker container contract)",
		Long: `Serve a model endpoint that honours the SageMaker container contract: GET /ping
answers 200, POST /invocations takes a fragment (video/mp4: init segment +
fragment; video/x-matroska; or an Annex-B keyframe as video/h264 or video/h265)
and answers JSON with each video frame's encoded size, the keyframes' positions
and an activity score: the mean size of the predicted frames over the mean size
of the keyframes, capped at 1. Encoders spend more bits on predicted frames as
things move, so the score rises with motion; it is a proxy computed without
decoding a pixel, moved by lighting and encoder settings too.

Point a hook at it:

  inference:
    hooks:
      - model: activity
        kind: sagemaker
        url: http://127.0.0.1:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			srv := &http.Server{Handler: &inference.ExampleModel{Name: name}, ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(cmd.OutOrStdout(), "example model %q on http://%s (GET /ping, POST /invocations)\n", name, ln.Addr())
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", `address to serve on (a SageMaker container serves ":8080")`)
	cmd.Flags().StringVar(&name, "name", "activity", "model name reported in answers")
	return cmd
}
