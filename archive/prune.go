package archive

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// PruneResult counts what Prune deleted.
type PruneResult struct {
	// Fragments and Manifests deleted.
	Fragments int `json:"fragments"`
	Manifests int `json:"manifests"`
	// Bytes of the fragments deleted.
	Bytes int64 `json:"bytes"`
}

// Prune deletes a stream's fragments (and their hour manifests) whose whole
// UTC hour ended at or before before: retention works in whole hours, so
// an hour is never left half-listed. It walks the keys from the oldest and
// stops at the first hour to keep. With dryRun it only counts.
func Prune(ctx context.Context, store Store, layout Layout, stream string, before time.Time, dryRun bool) (PruneResult, error) {
	var res PruneResult
	prefix, err := layout.FragmentsPrefix(stream)
	if err != nil {
		return res, err
	}
	// keys of hours before this one are deleted
	keepFrom := hourPath(before.UTC().Truncate(time.Hour))
	after := ""
	for {
		objs, err := store.List(ctx, prefix, after, DefaultListLimit)
		if err != nil {
			return res, fmt.Errorf("prune %s: %w", stream, err)
		}
		for _, o := range objs {
			rel := strings.TrimPrefix(o.Key, prefix)
			if len(rel) < len(keepFrom) || rel[:len(keepFrom)] >= keepFrom {
				return res, nil
			}
			isManifest := strings.HasSuffix(o.Key, "/"+HourIndexName)
			if !dryRun {
				if err := store.Delete(ctx, o.Key); err != nil {
					return res, fmt.Errorf("prune %s: %w", o.Key, err)
				}
			}
			if isManifest {
				res.Manifests++
			} else {
				res.Fragments++
				res.Bytes += o.Size
			}
		}
		if len(objs) < DefaultListLimit {
			return res, nil
		}
		after = objs[len(objs)-1].Key
	}
}
