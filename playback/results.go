package playback

import (
	"net/http"

	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/inference"
)

// listRecords serves GET /v1/streams/{s}/results and …/deadletters: the
// inference records of the stream's fragments that started in [start,
// end) (default: the last hour; at most 7 days), for one model or every
// model, at most limit (default 1000).
func (s *Server) listRecords(kind string) func(http.ResponseWriter, *http.Request, request) {
	return func(w http.ResponseWriter, r *http.Request, req request) {
		q := r.URL.Query()
		start, end, err := recentRange(q, s.Now(), inference.MaxListRange)
		if err != nil {
			s.fail(w, err)
			return
		}
		model := q.Get("model")
		if model != "" {
			if err := fragment.ValidateStreamName(model); err != nil {
				s.fail(w, badParam("model", "%q is not a model name", model))
				return
			}
		}
		limit, err := intParam(q, "limit", 1000, 1, 10000)
		if err != nil {
			s.fail(w, err)
			return
		}
		rs := &inference.Records{Store: s.Store, Layout: s.Layout}
		recs, err := rs.List(r.Context(), kind, req.stream, model, start, end, limit)
		if err != nil {
			s.fail(w, err)
			return
		}
		if recs == nil {
			recs = []inference.Record{}
		}
		WriteJSON(w, http.StatusOK, map[string]any{kind: recs})
	}
}
