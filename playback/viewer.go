package playback

import (
	"embed"
	"io/fs"
	"net/http"
)

// The viewer: static files, embedded, no build step at run time. hls.js is
// vendored under viewer/vendor (scripts/update-hlsjs.sh refreshes it).
//
//go:embed viewer
var viewerFiles embed.FS

func viewerHandler() http.Handler {
	sub, err := fs.Sub(viewerFiles, "viewer")
	if err != nil {
		panic(err)
	}
	files := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		http.StripPrefix("/viewer", files).ServeHTTP(w, r)
	})
}
