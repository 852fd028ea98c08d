package testenv

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// InstallChromium is the command named in skip messages of tests that need
// a headless Chromium.
const InstallChromium = "make peers (or: apt-get install -y chromium)"

// hlsPlayPage is the page PlayHLS opens: it plays a playlist with hls.js and
// POSTs a PlayResult to /report.
//
//go:embed hlsplay.html
var hlsPlayPage []byte

// Timeouts of PlayHLS beyond the requested play time.
const (
	// playStartGrace is how long the page waits for playback to start.
	playStartGrace = 20 * time.Second
	// playReportSlack bounds Chromium's start and the report's way back.
	playReportSlack = 30 * time.Second
)

// chromiumNames are the binaries RequireChromium looks for on PATH, in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"}

// RequireChromium returns the path of a Chromium binary ($TRIBUTARY_CHROMIUM
// when set, else chromium, chromium-browser or google-chrome on PATH), or
// fails the test under CI and skips it otherwise, naming "make peers".
func RequireChromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TRIBUTARY_CHROMIUM"); p != "" {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
		Missing(t, "chromium ($TRIBUTARY_CHROMIUM="+p+" is not an executable)", InstallChromium)
	}
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Missing(t, "chromium", InstallChromium)
	return ""
}

// VendoredHLSJS returns the path of the hls.js the viewer embeds
// (playback/viewer/vendor/hls.min.js at the repository root), or fails the
// test when it is missing (scripts/update-hlsjs.sh vendors it).
func VendoredHLSJS(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "playback", "viewer", "vendor", "hls.min.js")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("vendored hls.js: %v (run scripts/update-hlsjs.sh)", err)
	}
	return p
}

// PlayResult is what the test page reports.
type PlayResult struct {
	// CurrentTime is the media element's currentTime at the end, in
	// seconds (the position reached, which for a playlist that does not
	// start at 0 is more than the time played).
	CurrentTime float64
	// Errors holds every hls.js ERROR event (fatal or not), every media
	// element error, page exceptions, a play() refusal, and "playback never
	// started" when it did not; empty when playback was clean. hls.js
	// reports a broken segment with non-fatal errors only and plays on, so
	// check that Errors is empty, not only that CurrentTime advanced.
	Errors []string
	// LatencyMS is Date.now() - hls.playingDate at the end (how far behind
	// the wall clock the picture is, from EXT-X-PROGRAM-DATE-TIME), 0 when
	// unknown.
	LatencyMS float64
	// Events are notable events for debugging, each prefixed with the
	// milliseconds since the page loaded: MANIFEST_PARSED (levels,
	// codecs), the first LEVEL_LOADED (live, targetduration), the first
	// FRAG_LOADED, media events (playing, waiting, ended…), why the report
	// was sent, then "counts: FRAG_BUFFERED=n FRAG_LOADED=n LEVEL_LOADED=n
	// …" and the buffered ranges.
	Events []string
}

// PlayHLS plays playlistURL with hls.js (the file at hlsJSPath, usually
// VendoredHLSJS) in a headless Chromium and returns what the page saw. It
// plays for d counted from the first 'playing' event, or until the media
// ends, a fatal hls.js error or a media error, whichever comes first;
// playback that has not started 20 s after the page loaded is reported as
// an error. lowLatency sets hls.js's lowLatencyMode.
//
// Origins: the page (and hls.min.js) is served by a harness HTTP server
// PlayHLS starts on 127.0.0.1 with a random port, which also receives the
// page's report (POST /report). playlistURL belongs to the server under test,
// a different origin, so that server must answer CORS for the page's origin
// (http://127.0.0.1:PORT): Access-Control-Allow-Origin "*" or the request's
// Origin, as the playback server does by default (Access.CORSOrigins empty or
// "*"). A server that does not gives an hls.js manifestLoadError (a network
// error, HTTP status 0) in Errors. Signed URLs work as they are: the
// playlist's query is kept, and the playlist's own URIs carry theirs.
//
// PlayHLS fails the test when Chromium cannot be started, exits early or
// never reports (within d + 50 s); Chromium and its children are killed (the
// whole process group) before it returns. Call it from the test's goroutine.
func PlayHLS(t testing.TB, hlsJSPath, playlistURL string, d time.Duration, lowLatency bool) PlayResult {
	t.Helper()
	bin := RequireChromium(t)
	js, err := os.ReadFile(hlsJSPath)
	if err != nil {
		t.Fatalf("PlayHLS: hls.js: %v", err)
	}
	if d <= 0 {
		d = 5 * time.Second
	}

	reports := make(chan PlayResult, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(hlsPlayPage)
	})
	mux.HandleFunc("GET /hls.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(js)
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var res PlayResult
		if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&res); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case reports <- res:
		default: // a second report (a beacon after a fetch) is ignored
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/", http.NotFound)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	q := url.Values{}
	q.Set("src", playlistURL)
	q.Set("d", fmt.Sprint(d.Milliseconds()))
	q.Set("grace", fmt.Sprint(playStartGrace.Milliseconds()))
	if lowLatency {
		q.Set("ll", "1")
	}
	pageURL := srv.URL + "/?" + q.Encode()

	c := startChromium(t, bin, pageURL)
	defer c.stop()
	began := time.Now()
	timeout := d + playStartGrace + playReportSlack
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case res := <-reports:
		t.Logf("PlayHLS %s: currentTime %.2f s, %d errors, latency %.0f ms, after %v",
			redactQuery(playlistURL), res.CurrentTime, len(res.Errors), res.LatencyMS, time.Since(began).Round(10*time.Millisecond))
		return res
	case err := <-c.done:
		c.exited = true
		t.Fatalf("PlayHLS: chromium exited before the page reported (%v); its log:\n%s", err, fileTail(c.logPath, 4096))
	case <-timer.C:
		t.Fatalf("PlayHLS: no report from the page within %v; chromium's log:\n%s", timeout, fileTail(c.logPath, 4096))
	}
	return PlayResult{}
}

// chromium is a headless Chromium showing one page.
type chromium struct {
	cmd     *exec.Cmd
	done    chan error
	exited  bool
	logPath string
	profile string
	cdp     *cdp // with --remote-debugging-pipe
}

// startChromium opens pageURL in a headless Chromium with a fresh profile.
func startChromium(t testing.TB, bin, pageURL string) *chromium {
	return startChromiumIn(t, "", bin, pageURL)
}

// startChromiumIn opens pageURL in a headless Chromium with a fresh profile,
// inside network namespace ns when it is set, with extra flags.
func startChromiumIn(t testing.TB, ns, bin, pageURL string, extra ...string) *chromium {
	t.Helper()
	// Not t.TempDir: a Chromium helper may still be writing as the test
	// ends, and a profile that cannot be removed must not fail the test.
	profile, err := os.MkdirTemp("", "tributary-chromium-*")
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(profile, "chromium.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}

	args := []string{
		"--headless",
		"--no-sandbox",
		"--disable-gpu",
		"--disable-background-networking",
		"--no-first-run",
		"--no-default-browser-check",
		"--disable-component-update",
		"--disable-sync",
		"--disable-breakpad",
		"--disable-extensions",
		"--disable-dev-shm-usage",
		"--disable-background-timer-throttling",
		"--disable-renderer-backgrounding",
		"--disable-backgrounding-occluded-windows",
		"--autoplay-policy=no-user-gesture-required",
		"--mute-audio",
		"--user-data-dir=" + filepath.Join(profile, "profile"),
	}
	args = append(append(args, extra...), pageURL)
	cmd := exec.Command(bin, args...)
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = profile
	// keep the crash handler's database and caches out of $HOME
	cmd.Env = append(os.Environ(),
		"XDG_CONFIG_HOME="+filepath.Join(profile, "config"),
		"XDG_CACHE_HOME="+filepath.Join(profile, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var proto *cdp
	var childEnds []*os.File
	if slices.Contains(extra, "--remote-debugging-pipe") {
		// fd 3: commands to Chromium; fd 4: its replies
		cmdR, cmdW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		resR, resW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles = []*os.File{cmdR, resW}
		childEnds = []*os.File{cmdR, resW}
		proto = &cdp{w: cmdW, rf: resR, r: bufio.NewReader(resR)}
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(profile)
		t.Fatalf("starting %s: %v", bin, err)
	}
	logf.Close() // the child has its own descriptor
	for _, f := range childEnds {
		f.Close()
	}
	c := &chromium{cmd: cmd, done: make(chan error, 1), logPath: logPath, profile: profile, cdp: proto}
	go func() { c.done <- cmd.Wait() }()
	return c
}

// stop kills the whole process group (the browser, its renderer, GPU and
// utility processes, and the crash handler) and removes the profile.
func (c *chromium) stop() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	if !c.exited {
		<-c.done
	}
	if c.cdp != nil {
		c.cdp.close()
	}
	os.RemoveAll(c.profile)
}

// OpenPage shows pageURL in a headless Chromium until done is closed or
// timeout passes (a test failure, with Chromium's log), then kills it. The
// page reports to the test by its own means (a POST to a test server).
func OpenPage(t testing.TB, pageURL string, timeout time.Duration, done <-chan struct{}) {
	t.Helper()
	c := startChromium(t, RequireChromium(t), pageURL)
	defer c.stop()
	select {
	case <-done:
	case err := <-c.done:
		c.exited = true
		t.Fatalf("chromium exited before the page reported (%v); its log:\n%s", err, fileTail(c.logPath, 4096))
	case <-time.After(timeout):
		t.Fatalf("no report from the page within %v; chromium's log:\n%s", timeout, fileTail(c.logPath, 4096))
	}
}

// Flags of a Chromium that publishes its fake camera and microphone
// (getUserMedia answered without asking, real host candidates).
var FakeCameraFlags = []string{"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
	"--disable-features=WebRtcHideLocalIpsWithMdns"}

// OpenPageIn is OpenPage inside network namespace ns (nil: the host's),
// with extra flags. A page on a non-localhost origin that needs a secure
// context (getUserMedia) gets one with
// --unsafely-treat-insecure-origin-as-secure.
func OpenPageIn(t testing.TB, ns *NetNS, pageURL string, timeout time.Duration, done <-chan struct{}, extra ...string) {
	t.Helper()
	name := ""
	if ns != nil {
		name = ns.Name
	}
	extra = append(extra, secureOriginFlag(pageURL))
	c := startChromiumIn(t, name, RequireChromium(t), pageURL, extra...)
	defer c.stop()
	select {
	case <-done:
	case err := <-c.done:
		c.exited = true
		t.Fatalf("chromium exited early (%v); its log:\n%s", err, fileTail(c.logPath, 4096))
	case <-time.After(timeout):
		t.Fatalf("timed out after %v; chromium's log:\n%s", timeout, fileTail(c.logPath, 4096))
	}
}

// secureOriginFlag makes the page's origin a secure context (getUserMedia
// needs one; only localhost is by default).
func secureOriginFlag(pageURL string) string {
	if u, err := url.Parse(pageURL); err == nil {
		return "--unsafely-treat-insecure-origin-as-secure=" + u.Scheme + "://" + u.Host
	}
	return "--unsafely-treat-insecure-origin-as-secure=" + pageURL
}

// redactQuery drops a URL's query (signatures) for logs.
func redactQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// fileTail returns the last n bytes of a file.
func fileTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	if fi.Size() > n {
		if _, err := f.Seek(fi.Size()-n, io.SeekStart); err != nil {
			return err.Error()
		}
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// whipPublishPage publishes the fake camera over WHIP (PublishWHIP).
//
//go:embed whippublish.html
var whipPublishPage []byte

// PublishResult is what the WHIP publish page reports.
type PublishResult struct {
	// OK is set when the page published for the whole time and DELETEd
	// its session.
	OK bool `json:"ok"`
	// Error says what failed otherwise.
	Error string `json:"error"`
	// Codec is the video codec sent (from getStats); PacketsSent its
	// packets.
	Codec       string `json:"codec"`
	PacketsSent int    `json:"packets_sent"`
	// Codecs are the video codecs the browser can send, when it could not
	// send the one asked for.
	Codecs []string `json:"codecs"`
	// Events for debugging.
	Events []string `json:"events"`
}

// PublishWHIP has a headless Chromium, inside ns, publish its fake camera
// and microphone to whipURL (on ns.HostIP) with video codec (H264, VP8…)
// for d, then DELETE the session. The page is served on ns.HostIP.
func PublishWHIP(t testing.TB, ns *NetNS, whipURL, token, codec string, d time.Duration) PublishResult {
	t.Helper()
	bin := RequireChromium(t)
	reports := make(chan PublishResult, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(whipPublishPage)
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var res PublishResult
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&res); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case reports <- res:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", ns.HostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux}}
	srv.Start()
	defer srv.Close()
	q := url.Values{"whip": {whipURL}, "token": {token}, "codec": {codec}, "d": {fmt.Sprint(d.Milliseconds())}}
	// getUserMedia needs a secure context: this origin is not localhost
	c := startChromiumIn(t, ns.Name, bin, srv.URL+"/?"+q.Encode(),
		append(FakeCameraFlags, "--unsafely-treat-insecure-origin-as-secure="+srv.URL)...)
	defer c.stop()
	timeout := d + 60*time.Second
	select {
	case res := <-reports:
		t.Logf("PublishWHIP %s: ok %v, error %q, codec %s, %d packets; events %v", codec, res.OK, res.Error, res.Codec, res.PacketsSent, res.Events)
		return res
	case err := <-c.done:
		c.exited = true
		t.Fatalf("PublishWHIP: chromium exited before the page reported (%v); its log:\n%s", err, fileTail(c.logPath, 4096))
	case <-time.After(timeout):
		t.Fatalf("PublishWHIP: no report within %v; chromium's log:\n%s", timeout, fileTail(c.logPath, 4096))
	}
	return PublishResult{}
}
