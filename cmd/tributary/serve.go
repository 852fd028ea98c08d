package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-io/tributary/archive"
	edgeagent "github.com/tributary-io/tributary/edge-agent"
	"github.com/tributary-io/tributary/playback"
)

func serveCmd() *cobra.Command {
	var (
		archiveURL string
		listen     string
		tokens     []string
		noAuth     bool
		keyFile    string
		cors       []string
	)
	cmd := &cobra.Command{
		Use:   "serve --archive DIR|s3://BUCKET[/PREFIX]?endpoint=…",
		Short: "Serve the playback API and viewer over an archive (stateless; run as many as you like)",
		Long: `Serve the playback API (streams, ListFragments, HLS, GetMedia, clips, images,
timeline) and the web viewer straight from an archive. It keeps no state: any
number of instances can serve one bucket. S3 credentials come from
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY. Access needs a bearer token
(--token or TRIBUTARY_API_TOKENS, comma-separated) or a signed session; signed
sessions need the same key on every instance (--signing-key-file or
TRIBUTARY_SIGNING_KEY). --no-auth opens the API to anyone who can reach it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if archiveURL == "" {
				return errors.New("--archive is required")
			}
			ac, err := edgeagent.ParseArchiveURL(archiveURL)
			if err != nil {
				return err
			}
			log := newLogger("info", "text")
			store, err := edgeagent.OpenArchive(cmd.Context(), ac, log)
			if err != nil {
				return err
			}
			acc := playback.Access{Disabled: noAuth, CORSOrigins: cors}
			if !noAuth {
				acc.Tokens = tokens
				if env := os.Getenv("TRIBUTARY_API_TOKENS"); env != "" {
					acc.Tokens = append(acc.Tokens, strings.Split(env, ",")...)
				}
				key := os.Getenv("TRIBUTARY_SIGNING_KEY")
				if keyFile != "" {
					b, err := os.ReadFile(keyFile)
					if err != nil {
						return fmt.Errorf("--signing-key-file: %w", err)
					}
					key = strings.TrimSpace(string(b))
				}
				if len(acc.Tokens) == 0 {
					return errors.New("no API token: give --token (or TRIBUTARY_API_TOKENS), or --no-auth")
				}
				if len(key) < 32 {
					return errors.New("signed sessions need a key of at least 32 characters: --signing-key-file or TRIBUTARY_SIGNING_KEY")
				}
				acc.SigningKey = []byte(key)
			}
			srv := &playback.Server{Store: store, Layout: archive.Layout{Prefix: ac.Prefix}, Access: acc, Logger: log}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(cmd.OutOrStdout(), "serving %s on http://%s/\n", ac, ln.Addr())
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = hs.Shutdown(ctx)
			}()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&archiveURL, "archive", "", "a directory, or s3://BUCKET[/PREFIX]?endpoint=HOST:PORT")
	f.StringVar(&listen, "listen", "127.0.0.1:8081", "HTTP listen address")
	f.StringSliceVar(&tokens, "token", nil, "bearer tokens accepted (repeatable)")
	f.BoolVar(&noAuth, "no-auth", false, "no access control at all")
	f.StringVar(&keyFile, "signing-key-file", "", "file holding the key that signs playback sessions")
	f.StringSliceVar(&cors, "cors", []string{"*"}, "origins allowed to call from browsers")
	return cmd
}
