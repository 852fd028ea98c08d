// Package archive is Tributary's long-term storage: the Store interface that
// every object-store backend implements (a local directory here, S3 later),
// the deterministic key layout of fragments, init segments and hour
// manifests, the encoding of fragment metadata as object user metadata, the
// hour manifests (index.json) and ListFragments.
//
// The object store is the single source of truth. Keys sort by time:
//
//	{prefix}/streams/{stream}/stream.json
//	{prefix}/streams/{stream}/init/{configHash}.mp4
//	{prefix}/streams/{stream}/f/YYYY/MM/DD/HH/{startMs:013}-{number:020}.m4s|.mkv
//	{prefix}/streams/{stream}/f/YYYY/MM/DD/HH/index.json
//
// so a listing of a stream's fragments is a listing of keys in time order,
// and a time range is found with one List call that starts after a computed
// key (S3 StartAfter) instead of a scan.
package archive
