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
	// Records are the inference results and dead letters deleted with
	// their fragments' hours.
	Records int `json:"records"`
}

// Prune deletes a stream's fragments (and their hour manifests) whose whole
// UTC hour ended at or before before: retention works in whole hours, so
// an hour is never left half-listed. It walks the keys from the oldest and
// stops at the first hour to keep. The inference records of those hours
// go with them. With dryRun it only counts.
func Prune(ctx context.Context, store Store, layout Layout, stream string, before time.Time, dryRun bool) (PruneResult, error) {
	res, err := pruneFragments(ctx, store, layout, stream, before, dryRun)
	if err != nil {
		return res, err
	}
	keepFrom := hourPath(before.UTC().Truncate(time.Hour))
	for _, kind := range []string{RecordResult, RecordDeadLetter} {
		root, err := layout.RecordsPrefix(stream, kind, "")
		if err != nil {
			return res, err
		}
		// one model after another: "{model}0" sorts past every key of
		// "{model}/"
		for after := ""; ; {
			objs, err := store.List(ctx, root, after, 1)
			if err != nil {
				return res, fmt.Errorf("prune %s records: %w", stream, err)
			}
			if len(objs) == 0 {
				break
			}
			model, _, ok := strings.Cut(strings.TrimPrefix(objs[0].Key, root), "/")
			if !ok {
				after = objs[0].Key
				continue
			}
			n, err := pruneHours(ctx, store, root+model+"/", keepFrom, dryRun)
			res.Records += n
			if err != nil {
				return res, err
			}
			after = root + model + "0"
		}
	}
	return res, nil
}

// pruneHours deletes the keys under prefix ("…/YYYY/MM/DD/HH/…") of the
// hours before keepFrom, and returns how many.
func pruneHours(ctx context.Context, store Store, prefix, keepFrom string, dryRun bool) (int, error) {
	n := 0
	for after := ""; ; {
		objs, err := store.List(ctx, prefix, after, DefaultListLimit)
		if err != nil {
			return n, fmt.Errorf("prune %s: %w", prefix, err)
		}
		for _, o := range objs {
			rel := strings.TrimPrefix(o.Key, prefix)
			if len(rel) < len(keepFrom) || rel[:len(keepFrom)] >= keepFrom {
				return n, nil
			}
			if !dryRun {
				if err := store.Delete(ctx, o.Key); err != nil {
					return n, fmt.Errorf("prune %s: %w", o.Key, err)
				}
			}
			n++
		}
		if len(objs) < DefaultListLimit {
			return n, nil
		}
		after = objs[len(objs)-1].Key
	}
}

func pruneFragments(ctx context.Context, store Store, layout Layout, stream string, before time.Time, dryRun bool) (PruneResult, error) {
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
