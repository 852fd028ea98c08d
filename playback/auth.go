package playback

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors of access control.
var (
	ErrUnauthorized = errors.New("a bearer token or a signed URL is required")
	ErrForbidden    = errors.New("the signature is wrong or has expired")
)

// Access configures who may use the API.
type Access struct {
	// Disabled turns access control off (anyone may read). Default false:
	// a request needs a token or a signature.
	Disabled bool
	// Tokens are the bearer tokens accepted.
	Tokens []string
	// SigningKey signs playback session URLs (HMAC-SHA256). Required
	// unless Disabled; at least 32 bytes.
	SigningKey []byte
	// MaxSessionTTL bounds the lifetime of a signed session. Default 24 h.
	MaxSessionTTL time.Duration
	// CORSOrigins are the origins browser players may call from; "*" for
	// any. Default "*".
	CORSOrigins []string
}

// Session is a signature authorising GET requests under one stream until
// Exp, carried as the query parameters exp and sig.
type Session struct {
	Exp   int64  `json:"exp"`
	Sig   string `json:"sig"`
	Query string `json:"query"`
}

func (a *Access) sign(stream string, exp int64) string {
	m := hmac.New(sha256.New, a.SigningKey)
	m.Write([]byte("stream:"))
	m.Write([]byte(stream))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(exp, 10)))
	return hex.EncodeToString(m.Sum(nil))
}

func (a *Access) signPath(path string, exp int64) string {
	m := hmac.New(sha256.New, a.SigningKey)
	m.Write([]byte("path:"))
	m.Write([]byte(path))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(exp, 10)))
	return hex.EncodeToString(m.Sum(nil))
}

// SignPath returns the query ("exp=…&osig=…") that authorises GET and
// HEAD of one URL path, and nothing else, until now + ttl (bounded by
// MaxSessionTTL): a link to one fragment for a webhook, say.
func (a *Access) SignPath(path string, ttl time.Duration, now time.Time) string {
	exp := a.expiry(ttl, now)
	return "exp=" + strconv.FormatInt(exp, 10) + "&osig=" + a.signPath(path, exp)
}

// expiry is now + ttl, ttl bounded by MaxSessionTTL (default 24 h), in
// Unix seconds.
func (a *Access) expiry(ttl time.Duration, now time.Time) int64 {
	max := a.MaxSessionTTL
	if max <= 0 {
		max = 24 * time.Hour
	}
	if ttl <= 0 || ttl > max {
		ttl = max
	}
	return now.Add(ttl).Unix()
}

// NewSession signs a session for stream, valid for ttl (bounded by
// MaxSessionTTL).
func (a *Access) NewSession(stream string, ttl time.Duration, now time.Time) Session {
	exp := a.expiry(ttl, now)
	sig := a.sign(stream, exp)
	return Session{Exp: exp, Sig: sig, Query: "exp=" + strconv.FormatInt(exp, 10) + "&sig=" + sig}
}

// check authorises a request for stream ("" for a request about no one
// stream); it returns the session query to propagate into playlists ("" when
// authorised by token or with access off).
func (a *Access) check(r *http.Request, stream string, now time.Time) (string, error) {
	if a.Disabled {
		return "", nil
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		for _, t := range a.Tokens {
			if subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1 {
				return "", nil
			}
		}
		return "", ErrUnauthorized
	}
	q := r.URL.Query()
	if osig := q.Get("osig"); osig != "" {
		// a signed URL of one object: this path and nothing else
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || len(a.SigningKey) == 0 {
			return "", ErrForbidden
		}
		exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
		if err != nil || now.Unix() > exp || subtle.ConstantTimeCompare([]byte(osig), []byte(a.signPath(r.URL.Path, exp))) != 1 {
			return "", ErrForbidden
		}
		return "", nil
	}
	sig, expS := q.Get("sig"), q.Get("exp")
	if sig == "" && expS == "" {
		return "", ErrUnauthorized
	}
	if stream == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) || len(a.SigningKey) == 0 {
		return "", ErrForbidden
	}
	exp, err := strconv.ParseInt(expS, 10, 64)
	if err != nil {
		return "", ErrForbidden
	}
	want := a.sign(stream, exp)
	if subtle.ConstantTimeCompare([]byte(sig), []byte(want)) != 1 || now.Unix() > exp {
		return "", ErrForbidden
	}
	return "exp=" + url.QueryEscape(expS) + "&sig=" + url.QueryEscape(sig), nil
}

// CORSRules are what a CORS answer allows.
type CORSRules struct {
	Methods, Headers, Expose string
}

// apiCORS are the playback API's rules (Link: the next page of samples).
var apiCORS = CORSRules{Methods: "GET, HEAD, POST, OPTIONS", Headers: "Authorization, Range, Content-Type", Expose: "Content-Length, Content-Range, Link"}

// cors sets the CORS headers of a playback API response.
func (a *Access) cors(w http.ResponseWriter, r *http.Request) { a.CORS(w, r, apiCORS) }

// CORS sets the CORS headers of a response to a request from an allowed
// origin (CORSOrigins; all when empty), with rules.
func (a *Access) CORS(w http.ResponseWriter, r *http.Request, rules CORSRules) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	allowed := len(a.CORSOrigins) == 0
	for _, o := range a.CORSOrigins {
		if o == "*" || o == origin {
			allowed = true
		}
	}
	if !allowed {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Headers", rules.Headers)
	h.Set("Access-Control-Allow-Methods", rules.Methods)
	h.Set("Access-Control-Expose-Headers", rules.Expose)
	h.Set("Access-Control-Max-Age", "600")
}
