// Package playback is Tributary's read side: an HTTP API that serves live
// and archived video straight from the archive, stateless, so any number of
// servers can stand over one bucket. It lists streams and fragments
// (ListFragments), serves HLS (live, live replay and on demand; fMP4
// fragments as they are, MKV ones remuxed on the fly), GetMedia and
// GetMediaForFragmentList (an MKV stream with KVS tags that tails live
// fragments as they land), progressive MP4 clips of any length, JPEG/PNG
// images through ffmpeg, a timeline of recorded spans, and the embedded web
// viewer. Access is by bearer token, or by an HMAC signature with an expiry
// scoped to one stream, so players fetch playlists and segments without
// headers.
package playback
