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
	// Readings are the NDJSON readings beside sensor fragments.
	Readings int `json:"readings"`
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
			err = pruneHours(ctx, store, root+model+"/", keepFrom, dryRun, func(ObjectInfo) { res.Records++ })
			if err != nil {
				return res, err
			}
			after = root + model + "0"
		}
	}
	return res, nil
}

// pruneHours deletes the keys under prefix ("…/YYYY/MM/DD/HH/…") of the
// hours before keepFrom, walking from the oldest, and tells deleted about
// each (with dryRun it only tells).
func pruneHours(ctx context.Context, store Store, prefix, keepFrom string, dryRun bool, deleted func(ObjectInfo)) error {
	for after := ""; ; {
		objs, err := store.List(ctx, prefix, after, DefaultListLimit)
		if err != nil {
			return fmt.Errorf("prune %s: %w", prefix, err)
		}
		for _, o := range objs {
			rel := strings.TrimPrefix(o.Key, prefix)
			if len(rel) < len(keepFrom) || rel[:len(keepFrom)] >= keepFrom {
				return nil
			}
			if !dryRun {
				if err := store.Delete(ctx, o.Key); err != nil {
					return fmt.Errorf("prune %s: %w", o.Key, err)
				}
			}
			deleted(o)
		}
		if len(objs) < DefaultListLimit {
			return nil
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
	err = pruneHours(ctx, store, prefix, hourPath(before.UTC().Truncate(time.Hour)), dryRun, func(o ObjectInfo) {
		switch {
		case strings.HasSuffix(o.Key, "/"+HourIndexName):
			res.Manifests++
		case strings.HasSuffix(o.Key, ExtNDJSON):
			res.Readings++
		default:
			res.Fragments++
			res.Bytes += o.Size
		}
	})
	return res, err
}
