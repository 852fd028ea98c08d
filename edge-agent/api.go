package edgeagent

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tributary-io/tributary/playback"
)

// secretFile returns the content of path, creating it with n random bytes
// (hex) when it does not exist.
func secretFile(path string, n int) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	}
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	s := hex.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("creating %s: %w", path, err)
	}
	return s, nil
}

// apiAccess builds the playback API's access control from the config.
func (a *Agent) apiAccess() (playback.Access, error) {
	c := a.Config.API
	acc := playback.Access{Disabled: c.Auth == "none", Tokens: c.Tokens, CORSOrigins: c.CORSOrigins}
	if acc.Disabled {
		return acc, nil
	}
	key, err := secretFile(c.SigningKeyFile, 32)
	if err != nil {
		return acc, fmt.Errorf("api.signing_key_file: %w", err)
	}
	acc.SigningKey = []byte(key)
	if len(acc.Tokens) == 0 {
		path := filepath.Join(a.Config.DataDir, "api-token")
		tok, err := secretFile(path, 16)
		if err != nil {
			return acc, fmt.Errorf("api token: %w", err)
		}
		acc.Tokens = []string{tok}
		a.Logger.Info("playback API: no api.tokens configured; using the token kept in a file", "file", path)
	}
	return acc, nil
}

// APIToken returns a token the playback API accepts ("" when auth is off).
func (a *Agent) APIToken() string {
	if a.access.Disabled || len(a.access.Tokens) == 0 {
		return ""
	}
	return a.access.Tokens[0]
}
