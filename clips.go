// Package tributary holds what the whole module shares: the synthetic
// camera clips of testdata, embedded so that `tributary demo` and
// `tributary camsim` work from any directory.
package tributary

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed testdata/*.ts testdata/*.raw
var clips embed.FS

// ExtractClips writes the embedded clips into dir (created if needed),
// skipping files already there with the same content, and returns dir.
func ExtractClips(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	entries, err := fs.ReadDir(clips, "testdata")
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		b, err := clips.ReadFile("testdata/" + e.Name())
		if err != nil {
			return "", err
		}
		dst := filepath.Join(dir, e.Name())
		if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, b) {
			continue
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return "", fmt.Errorf("extracting clips: %w", err)
		}
	}
	return dir, nil
}
