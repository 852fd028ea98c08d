package playback

import (
	"errors"
	"net/http"
)

var errNoFFmpeg = errors.New("images need ffmpeg, which is not installed on this server")

func (s *Server) clip(w http.ResponseWriter, r *http.Request, req request) {
	writeError(w, http.StatusNotImplemented, "not_implemented", "clips are coming")
}

func (s *Server) images(w http.ResponseWriter, r *http.Request, req request) {
	writeError(w, http.StatusNotImplemented, "not_implemented", "images are coming")
}
