package edgeagent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tributary-io/tributary/archive"
	"github.com/tributary-io/tributary/fragment"
	"github.com/tributary-io/tributary/inference"
	"github.com/tributary-io/tributary/ingest/sensor"
	iwebrtc "github.com/tributary-io/tributary/ingest/webrtc"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("config")

// Config is the agent's configuration, read from YAML. Unknown keys are
// rejected; every scalar can be overridden from the environment as
// TRIBUTARY_<PATH>, the path being the YAML keys upper-cased and joined by
// "_" (TRIBUTARY_HTTP_LISTEN, TRIBUTARY_STREAMS_0_URL).
type Config struct {
	// DataDir holds the agent's state (fragment numbering). Default
	// "./tributary-data".
	DataDir string `yaml:"data_dir"`
	// HTTP is the status, health and metrics server.
	HTTP HTTPConfig `yaml:"http"`
	// Archive is where fragments are stored.
	Archive ArchiveConfig `yaml:"archive"`
	// Spool is the durable local buffer in front of an object-store archive.
	Spool SpoolConfig `yaml:"spool"`
	// Defaults apply to every stream that does not set its own.
	Defaults StreamDefaults `yaml:"defaults"`
	// Streams to pull (with a url) or to accept pushes for (without).
	Streams []StreamConfig `yaml:"streams"`
	// PutMedia configures push ingest (POST /v1/streams/{s}/putmedia).
	PutMedia PutMediaConfig `yaml:"putmedia"`
	// API configures access to the playback API and the viewer.
	API APIConfig `yaml:"api"`
	// Log configures logging.
	Log LogConfig `yaml:"log"`
	// Inference runs model hooks on fragments as they close.
	Inference InferenceConfig `yaml:"inference"`
	// WebRTC configures WHIP publishing (POST /v1/streams/{s}/whip) and
	// the peer connections of WHEP pulls.
	WebRTC WebRTCConfig `yaml:"webrtc"`
}

// WebRTCConfig configures WebRTC ingest. WHIP publishers present a push
// token like PutMedia producers (putmedia.auth, putmedia.tokens, a stream's
// token; putmedia.enabled does not matter), and streams are created on a
// first publish when putmedia.allow_new_streams is on.
type WebRTCConfig struct {
	// WHIP accepts publishers. Default true.
	WHIP *bool `yaml:"whip"`
	// MaxPublishers is the most WHIP publishers at once. Default 16.
	MaxPublishers int `yaml:"max_publishers"`
	// ICEServers (STUN, TURN) for both WHIP and WHEP. Default none (host
	// candidates: enough on a LAN).
	ICEServers []iwebrtc.ICEServer `yaml:"ice_servers"`
	// PublicIPs are announced instead of local addresses (1:1 NAT).
	PublicIPs []string `yaml:"public_ips"`
	// UDPPorts bounds the UDP ports used, "40000-40100". Default any.
	UDPPorts string `yaml:"udp_ports"`
	// Loopback offers loopback candidates, for peers on the same host.
	// Default false.
	Loopback bool `yaml:"loopback"`
	// APITokensPublish lets API (viewer) tokens publish over WHIP too, so
	// the viewer's Publish camera button works with the viewer's token.
	// Default false: an API token reads, a push token writes.
	APITokensPublish bool `yaml:"api_tokens_publish"`
}

// engine builds the WebRTC engine of the config (validated).
func (w WebRTCConfig) engine() *iwebrtc.Engine {
	e := &iwebrtc.Engine{ICEServers: w.ICEServers, PublicIPs: w.PublicIPs, Loopback: w.Loopback}
	e.UDPPortMin, e.UDPPortMax, _ = parsePortRange(w.UDPPorts)
	return e
}

// parsePortRange parses "min-max".
func parsePortRange(s string) (uint16, uint16, error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	hi, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	if !ok || err1 != nil || err2 != nil || lo == 0 || hi < lo {
		return 0, 0, fmt.Errorf("%q is not a port range such as \"40000-40100\"", s)
	}
	return uint16(lo), uint16(hi), nil
}

// InferenceConfig configures the inference hooks the agent runs as
// fragments close (the edge placement; `tributary consume` runs them from
// the archive).
type InferenceConfig struct {
	// Hooks to run, each on the fragments of its streams.
	Hooks []inference.Hook `yaml:"hooks"`
	// Queue is the number of fragments waiting per hook; a fragment that
	// finds it full is dropped for that hook and counted. Default 64.
	Queue int `yaml:"queue"`
	// PublicURL is the agent's base URL as webhook endpoints reach it, for
	// the signed fragment URLs of their notices. Default
	// "http://<http.listen>".
	PublicURL string `yaml:"public_url"`
	// Consumer configures `tributary consume`, which runs the hooks placed
	// "archive" over the archive.
	Consumer ConsumerConfig `yaml:"consumer"`
}

// ConsumerConfig configures `tributary consume`.
type ConsumerConfig struct {
	// Group names the consumer group: consumers of one group share the
	// shards; groups run independently. Default "default".
	Group string `yaml:"group"`
	// ID of this consumer in its group. Default host-pid-random.
	ID string `yaml:"id"`
	// Local runs one consumer without leases. Default false.
	Local bool `yaml:"local"`
	// LeaseTTL is how long a shard lease holds without renewal; a dead
	// consumer's shards are taken over within twice this. Default "10s".
	LeaseTTL Duration `yaml:"lease_ttl"`
	// Poll is the interval between looks for new fragments. Default "1s".
	Poll Duration `yaml:"poll"`
	// Workers is the number of streams processed at once. Default 8.
	Workers int `yaml:"workers"`
	// Lookback is how far behind a stream's checkpoint late fragments are
	// looked for. Default "10m".
	Lookback Duration `yaml:"lookback"`
}

// HTTPConfig configures the agent's HTTP server.
type HTTPConfig struct {
	// Listen address. Default "127.0.0.1:8080"; "off" disables the server.
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiler at /debug/pprof/ (no authentication: keep
	// the listen address private). Default false.
	Pprof bool `yaml:"pprof"`
}

// ArchiveConfig selects the archive.
type ArchiveConfig struct {
	// Type of store: "local" (a directory) or "s3" (S3, MinIO or any
	// S3-compatible store). Default "local".
	Type string `yaml:"type"`
	// Path of the local archive directory. Default "<data_dir>/archive".
	Path string `yaml:"path"`
	// Prefix of every key in the archive. Default none.
	Prefix string `yaml:"prefix"`
	// S3 configures the "s3" archive.
	S3 S3Config `yaml:"s3"`
	// Retention deletes archived fragments older than this ("30d", "720h");
	// streams may override it. Default 0: keep forever.
	Retention Duration `yaml:"retention"`
}

// S3Config configures an S3-compatible archive. Credentials come from
// access_key/secret_key, else credentials_file, else the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); they are
// never logged.
type S3Config struct {
	// Endpoint is host:port or a URL ("https://s3.example.com"). Required.
	Endpoint string `yaml:"endpoint"`
	// Bucket name. Required.
	Bucket string `yaml:"bucket"`
	// Region. Default "us-east-1".
	Region string `yaml:"region"`
	// PathStyle forces path-style requests. Default: automatic.
	PathStyle bool `yaml:"path_style"`
	// TLS: true for https when Endpoint has no scheme. Default false.
	TLS bool `yaml:"tls"`
	// CAFile is a PEM file of a private CA to trust. Default none.
	CAFile string `yaml:"ca_file"`
	// AccessKey and SecretKey, when not from a file or the environment.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// CredentialsFile holds AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… lines.
	CredentialsFile string `yaml:"credentials_file"`
	// CreateBucket creates the bucket when it is missing. Default false.
	CreateBucket bool `yaml:"create_bucket"`
	// PartSize: objects above it are uploaded in parts. Default 16MiB.
	PartSize ByteSize `yaml:"part_size"`
}

// APIConfig configures access to the playback API: bearer tokens, signed
// playback sessions (so players fetch without headers) and CORS.
type APIConfig struct {
	// Auth: "token" or "none" (anyone may read). Default token.
	Auth string `yaml:"auth"`
	// Tokens accepted as "Authorization: Bearer …". With none, the agent
	// makes one and keeps it in <data_dir>/api-token (mode 0600).
	Tokens []string `yaml:"tokens"`
	// SigningKeyFile holds the key that signs playback sessions. Default
	// "<data_dir>/api-signing.key", created when missing.
	SigningKeyFile string `yaml:"signing_key_file"`
	// CORSOrigins browser players may call from. Default ["*"].
	CORSOrigins []string `yaml:"cors_origins"`
}

// PutMediaConfig configures push ingest.
type PutMediaConfig struct {
	// Enabled accepts pushes. Default true.
	Enabled *bool `yaml:"enabled"`
	// Auth: "token" (a bearer token from tokens or the stream's token is
	// required) or "none". Default token.
	Auth string `yaml:"auth"`
	// Tokens accepted for every stream.
	Tokens []string `yaml:"tokens"`
	// AllowNewStreams creates a stream on its first push when it is not in
	// streams. Default true.
	AllowNewStreams *bool `yaml:"allow_new_streams"`
	// MaxTracks a producer may send. Default 3.
	MaxTracks int `yaml:"max_tracks"`
	// MaxRate is the highest sustained rate of one producer. Default 16MiB (per second).
	MaxRate ByteSize `yaml:"max_rate"`
	// MaxFrameSize bounds one frame. Default 16MiB.
	MaxFrameSize ByteSize `yaml:"max_frame_size"`
	// PersistedOn says when a fragment is acknowledged PERSISTED: "durable"
	// (fsynced to the spool, or to a local archive) or "archive" (in the
	// object store, after the upload). Default durable.
	PersistedOn string `yaml:"persisted_on"`
}

// Spool strategies when the spool is full.
const (
	StrategyDeleteOldest = "delete_oldest"
	StrategyDenyNew      = "deny_new"
)

// SpoolConfig configures the durable edge buffer: every fragment is on
// local disk (fsynced) before it counts, and stays there until the archive
// has it.
type SpoolConfig struct {
	// Enabled: "auto" (on for an s3 archive, off for a local one), "true"
	// or "false". Default "auto".
	Enabled string `yaml:"enabled"`
	// Path of the spool. Default "<data_dir>/spool".
	Path string `yaml:"path"`
	// MaxBytes is the most fragment data kept locally. Default 2GiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Strategy when full: delete_oldest (uploaded fragments first, then the
	// oldest not uploaded, each counted as lost) or deny_new (recording
	// pauses until there is room). Default delete_oldest.
	Strategy string `yaml:"strategy"`
	// Retention drops local fragments older than this, uploaded or not
	// (those not uploaded are counted as lost). Default 72h.
	Retention Duration `yaml:"retention"`
	// DeleteAfterUpload removes a fragment from the spool once the archive
	// has it. Default true.
	DeleteAfterUpload *bool `yaml:"delete_after_upload"`
	// UploadConcurrency is how many uploads run at once (one per stream at
	// most, so each stream's fragments land in order). Default 4.
	UploadConcurrency int `yaml:"upload_concurrency"`
	// ShutdownGrace is how long a stopping agent waits for the uploads of
	// the last fragments; what is left stays in the spool for the next run.
	// Default 5s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
}

// Active reports whether fragments go through the spool.
func (s SpoolConfig) Active(archiveType string) bool {
	switch s.Enabled {
	case "true":
		return true
	case "false":
		return false
	}
	return archiveType == "s3"
}

// LogConfig configures logging.
type LogConfig struct {
	// Level: debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format: text or json. Default text.
	Format string `yaml:"format"`
}

// FragmentConfig configures fragment cutting.
type FragmentConfig struct {
	// Target duration, 0.5 s to 10 s: fragments are cut at the first
	// keyframe at or after it. Default 2 s.
	Target Duration `yaml:"target"`
	// MaxDuration is the hard cap on a GOP. Default 30 s.
	MaxDuration Duration `yaml:"max_duration"`
	// MaxBytes is the hard cap on a GOP's size. Default 64 MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// StreamDefaults are the defaults of every stream.
type StreamDefaults struct {
	// Transport: auto, tcp or udp. Default auto.
	Transport string `yaml:"transport"`
	// StallTimeout: no media for this long means reconnect. Default 5 s.
	StallTimeout Duration `yaml:"stall_timeout"`
	// Fragment cutting.
	Fragment FragmentConfig `yaml:"fragment"`
	// Container of the fragments: fmp4 (CMAF; plays in browsers) or mkv
	// (self-contained Matroska with KVS tags). Default fmp4.
	Container string `yaml:"container"`
}

// StreamConfig is one stream to pull.
type StreamConfig struct {
	// Name of the stream, ^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$.
	Name string `yaml:"name"`
	// URL of the camera: rtsp:// or rtsps:// (credentials allowed), or a
	// WHEP endpoint as whep:// (HTTP) or wheps:// (HTTPS).
	URL string `yaml:"url"`
	// Transport overrides defaults.transport.
	Transport string `yaml:"transport"`
	// StallTimeout overrides defaults.stall_timeout.
	StallTimeout Duration `yaml:"stall_timeout"`
	// Fragment overrides defaults.fragment, field by field.
	Fragment FragmentConfig `yaml:"fragment"`
	// Tags are user tags copied into every fragment's metadata.
	Tags map[string]string `yaml:"tags"`
	// Disabled streams are not pulled.
	Disabled bool `yaml:"disabled"`
	// Retention overrides archive.retention for this stream.
	Retention Duration `yaml:"retention"`
	// Container overrides defaults.container.
	Container string `yaml:"container"`
	// Token is a bearer token accepted for pushes (PutMedia, WHIP) to this
	// stream.
	Token string `yaml:"token"`
	// SourceToken is sent as a bearer token to the source: a WHEP
	// endpoint's.
	SourceToken string `yaml:"source_token"`
	// ONVIFMetadata records the ONVIF metadata track an RTSP camera offers
	// (vnd.onvif.metadata: its analytics frames and events as XML) as a
	// data track of the stream: the stream's fragments are then MKV, with
	// the documents as a text track; HLS and the live edge serve the video
	// and audio without it. Default false: the track is not set up.
	ONVIFMetadata bool `yaml:"onvif_metadata"`
	// Sensor makes the stream a sensor stream (no url): JSON readings from
	// MQTT and from HTTP pushes (POST /v1/streams/{s}/samples), cut into
	// data fragments on a wall-clock grid.
	Sensor *SensorConfig `yaml:"sensor"`
}

// SensorConfig configures a sensor stream.
type SensorConfig struct {
	// MQTT subscribes to a broker; without it the stream takes HTTP
	// pushes only (which it takes anyway).
	MQTT *MQTTConfig `yaml:"mqtt"`
	// Timestamp says where a reading's time is. Default: the receive time.
	Timestamp sensor.Timestamp `yaml:"timestamp"`
	// Period of the fragments' grid. Default 2s.
	Period Duration `yaml:"period"`
	// Window is how late a reading may come and still go in order. Default 2s.
	Window Duration `yaml:"window"`
	// MaxReadingSize bounds one reading. Default 64KiB.
	MaxReadingSize ByteSize `yaml:"max_reading_size"`
	// MaxRate bounds the readings per second. Default 5000.
	MaxRate int `yaml:"max_rate"`
	// Link names the camera stream the sensor belongs to: the viewer
	// charts its readings under that camera's timeline.
	Link string `yaml:"link"`
	// AlignTo names a stream (a camera of this agent) whose fragment
	// boundaries cut this one's, instead of the grid; while it makes no
	// fragments for 30 s, the grid takes over. Default: the grid.
	AlignTo string `yaml:"align_to"`
}

// MQTTConfig is a broker subscription.
type MQTTConfig struct {
	// Broker is tcp://host:1883, ssl://host:8883, ws:// or wss://.
	Broker string `yaml:"broker"`
	// Topics are topic filters ("site/+/temp").
	Topics []string `yaml:"topics"`
	// QoS of the subscriptions. Default 1.
	QoS *int `yaml:"qos"`
	// ClientID names the (persistent) session; it must be unique at the
	// broker. Default "tributary-<host name>-<stream>".
	ClientID string `yaml:"client_id"`
	// Username and Password for the broker.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// CAFile, CertFile, KeyFile: TLS (PEM files).
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify skips checking the broker's certificate.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// client builds the MQTT subscriber of the config.
func (m *MQTTConfig) client(stream string) *sensor.MQTT {
	c := &sensor.MQTT{Broker: m.Broker, Topics: m.Topics, ClientID: m.ClientID, Username: m.Username, Password: m.Password,
		CAFile: m.CAFile, CertFile: m.CertFile, KeyFile: m.KeyFile, InsecureSkipVerify: m.InsecureSkipVerify}
	if c.ClientID == "" {
		host, _ := os.Hostname()
		c.ClientID = "tributary-" + host + "-" + stream
	}
	if m.QoS != nil {
		q := byte(*m.QoS)
		c.QoS = &q
	}
	return c
}

// Duration is a time.Duration written as a string ("2s", "500ms").
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: must be a duration such as \"2s\"", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as \"2s\"", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses a Go duration ("2s", "1h30m") or a number of days
// ("30d"). Negative durations are an error.
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return v, nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ByteSize is a size in bytes, written as a number or with a unit ("64MiB",
// "500MB", "1GiB").
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// ParseByteSize parses "64MiB", "1GB", "1024".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("not a size such as \"64MiB\"")
	}
	return ByteSize(v * float64(mult)), nil
}

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: must be a size such as \"64MiB\"", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is %v", n.Line, n.Value, err)
	}
	*b = v
	return nil
}

// LoadConfig reads a YAML config file, applies environment overrides and
// defaults, and validates it.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return ParseConfig(bytes.NewReader(b), os.Environ())
}

// ParseConfig parses YAML from r, applies overrides from env (KEY=VALUE
// pairs), fills defaults and validates. Errors name the offending key.
func ParseConfig(r io.Reader, env []string) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(r)
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	cfg := &Config{}
	if root.Kind != 0 {
		doc := &root
		if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
			doc = doc.Content[0]
		}
		if err := checkKeys(doc, reflect.TypeOf(*cfg), ""); err != nil {
			return nil, err
		}
		if err := doc.Decode(cfg); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	if err := applyEnv(cfg, env); err != nil {
		return nil, err
	}
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// FinishConfig fills the defaults of a Config built in code and validates
// it, as ParseConfig does for a file.
func FinishConfig(cfg *Config) (*Config, error) {
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkKeys rejects keys that name no field, with their full path.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			if _, ok := reflect.New(t).Interface().(yaml.Unmarshaler); ok {
				return nil
			}
			return fmt.Errorf("%w: %s (line %d): must be a mapping", ErrConfig, orRoot(path), n.Line)
		}
		fields := map[string]reflect.StructField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag != "" && tag != "-" {
				fields[tag] = f
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			p := joinPath(path, k.Value)
			if !ok {
				known := make([]string, 0, len(fields))
				for name := range fields {
					known = append(known, name)
				}
				sort.Strings(known)
				return fmt.Errorf("%w: %s (line %d): unknown key; known keys here: %s", ErrConfig, p, k.Line, strings.Join(known, ", "))
			}
			if err := checkKeys(v, f.Type, p); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			return fmt.Errorf("%w: %s (line %d): must be a list", ErrConfig, orRoot(path), n.Line)
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(p string) string {
	if p == "" {
		return "(top level)"
	}
	return p
}

// applyEnv sets fields from TRIBUTARY_* variables.
func applyEnv(cfg *Config, env []string) error {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "TRIBUTARY_") {
			vars[k] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	used := map[string]bool{}
	if err := envWalk(reflect.ValueOf(cfg).Elem(), "TRIBUTARY", "", vars, used); err != nil {
		return err
	}
	for k := range vars {
		if !used[k] && !strings.HasPrefix(k, "TRIBUTARY_CONFIG") {
			return fmt.Errorf("%w: environment variable %s names no config key", ErrConfig, k)
		}
	}
	return nil
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func envWalk(v reflect.Value, name, path string, vars map[string]string, used map[string]bool) error {
	t := v.Type()
	if reflect.PointerTo(t).Implements(unmarshalerType) || t.Kind() != reflect.Struct && t.Kind() != reflect.Slice {
		val, ok := vars[name]
		if !ok {
			return nil
		}
		used[name] = true
		if t.Kind() == reflect.Map {
			return fmt.Errorf("%w: %s: %s cannot be set from the environment", ErrConfig, name, path)
		}
		node := &yaml.Node{Kind: yaml.ScalarNode, Value: val, Tag: "!!str"}
		if t.Kind() == reflect.Bool || t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64 {
			node.Tag = ""
		}
		if err := node.Decode(v.Addr().Interface()); err != nil {
			return fmt.Errorf("%w: %s (%s): %v", ErrConfig, name, path, err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			if err := envWalk(v.Field(i), name+"_"+strings.ToUpper(tag), joinPath(path, tag), vars, used); err != nil {
				return err
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if err := envWalk(v.Index(i), fmt.Sprintf("%s_%d", name, i), fmt.Sprintf("%s[%d]", path, i), vars, used); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Config) fillDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./tributary-data"
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
	if c.Archive.Type == "" {
		c.Archive.Type = "local"
	}
	if c.Archive.Path == "" {
		c.Archive.Path = filepath.Join(c.DataDir, "archive")
	}
	if c.Archive.S3.Region == "" {
		c.Archive.S3.Region = "us-east-1"
	}
	if c.Archive.S3.PartSize == 0 {
		c.Archive.S3.PartSize = 16 << 20
	}
	if c.API.Auth == "" {
		c.API.Auth = "token"
	}
	if c.API.SigningKeyFile == "" {
		c.API.SigningKeyFile = filepath.Join(c.DataDir, "api-signing.key")
	}
	if len(c.API.CORSOrigins) == 0 {
		c.API.CORSOrigins = []string{"*"}
	}
	pm := &c.PutMedia
	if pm.Enabled == nil {
		t := true
		pm.Enabled = &t
	}
	if pm.AllowNewStreams == nil {
		t := true
		pm.AllowNewStreams = &t
	}
	if pm.Auth == "" {
		pm.Auth = "token"
	}
	if pm.MaxTracks == 0 {
		pm.MaxTracks = 3
	}
	if pm.MaxRate == 0 {
		pm.MaxRate = 16 << 20
	}
	if pm.MaxFrameSize == 0 {
		pm.MaxFrameSize = 16 << 20
	}
	if pm.PersistedOn == "" {
		pm.PersistedOn = "durable"
	}
	if c.WebRTC.WHIP == nil {
		t := true
		c.WebRTC.WHIP = &t
	}
	if c.WebRTC.MaxPublishers == 0 {
		c.WebRTC.MaxPublishers = 16
	}
	sp := &c.Spool
	if sp.Enabled == "" {
		sp.Enabled = "auto"
	}
	if sp.Path == "" {
		sp.Path = filepath.Join(c.DataDir, "spool")
	}
	if sp.MaxBytes == 0 {
		sp.MaxBytes = 2 << 30
	}
	if sp.Strategy == "" {
		sp.Strategy = StrategyDeleteOldest
	}
	if sp.Retention == 0 {
		sp.Retention = Duration(72 * time.Hour)
	}
	if sp.DeleteAfterUpload == nil {
		t := true
		sp.DeleteAfterUpload = &t
	}
	if sp.UploadConcurrency == 0 {
		sp.UploadConcurrency = 4
	}
	if sp.ShutdownGrace == 0 {
		sp.ShutdownGrace = Duration(5 * time.Second)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	d := &c.Defaults
	if d.Transport == "" {
		d.Transport = "auto"
	}
	if d.StallTimeout == 0 {
		d.StallTimeout = Duration(5 * time.Second)
	}
	if d.Container == "" {
		d.Container = fragment.ContainerFMP4
	}
	if d.Fragment.Target == 0 {
		d.Fragment.Target = Duration(fragment.DefaultTarget)
	}
	if d.Fragment.MaxDuration == 0 {
		d.Fragment.MaxDuration = Duration(fragment.DefaultMaxDuration)
	}
	if d.Fragment.MaxBytes == 0 {
		d.Fragment.MaxBytes = fragment.DefaultMaxBytes
	}
	for i := range c.Streams {
		s := &c.Streams[i]
		if s.Transport == "" {
			s.Transport = d.Transport
		}
		if s.StallTimeout == 0 {
			s.StallTimeout = d.StallTimeout
		}
		if s.Fragment.Target == 0 {
			s.Fragment.Target = d.Fragment.Target
		}
		if s.Fragment.MaxDuration == 0 {
			s.Fragment.MaxDuration = d.Fragment.MaxDuration
		}
		if s.Fragment.MaxBytes == 0 {
			s.Fragment.MaxBytes = d.Fragment.MaxBytes
		}
		if s.Retention == 0 {
			s.Retention = c.Archive.Retention
		}
		if s.Container == "" {
			s.Container = d.Container
		}
		if ss := s.Sensor; ss != nil {
			if ss.Period == 0 {
				ss.Period = Duration(sensor.DefaultPeriod)
			}
			if ss.Window == 0 {
				ss.Window = Duration(sensor.DefaultWindow)
			}
			if ss.MaxReadingSize == 0 {
				ss.MaxReadingSize = 64 << 10
			}
			if ss.MaxRate == 0 {
				ss.MaxRate = 5000
			}
		}
	}
}

// Validate checks values; errors name the key. A stream URL of the wrong
// scheme is not a config error: that stream fails on its own and reports
// it in its status, and the others run.
func (c *Config) Validate() error {
	bad := badKey
	models := map[string]int{}
	for i := range c.Inference.Hooks {
		h := &c.Inference.Hooks[i]
		key := fmt.Sprintf("inference.hooks[%d]", i)
		if err := h.Validate(key); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if j, ok := models[h.Model]; ok {
			return bad(key+".model", "%q is also the model of inference.hooks[%d]", h.Model, j)
		}
		models[h.Model] = i
		if h.Payload == inference.PayloadJPEG && !inference.HaveFFmpeg() {
			return bad(key+".payload", "%v", inference.ErrNoFFmpeg)
		}
	}
	cc := c.Inference.Consumer
	if cc.Group != "" && fragment.ValidateStreamName(cc.Group) != nil {
		return bad("inference.consumer.group", "%q must match %s", cc.Group, fragment.StreamNamePattern)
	}
	if cc.ID != "" && fragment.ValidateStreamName(cc.ID) != nil {
		return bad("inference.consumer.id", "%q must match %s", cc.ID, fragment.StreamNamePattern)
	}
	if cc.LeaseTTL != 0 && (time.Duration(cc.LeaseTTL) < 100*time.Millisecond || time.Duration(cc.LeaseTTL) > time.Hour) {
		return bad("inference.consumer.lease_ttl", "%v is outside 100ms to 1h", time.Duration(cc.LeaseTTL))
	}
	if cc.Poll < 0 || cc.Workers < 0 || cc.Workers > 1024 {
		return bad("inference.consumer.workers", "%d is outside 0 to 1024", cc.Workers)
	}
	if c.Inference.Queue < 0 || c.Inference.Queue > 1<<16 {
		return bad("inference.queue", "%d is outside 0 to 65536", c.Inference.Queue)
	}
	if u := c.Inference.PublicURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return bad("inference.public_url", "%q is not an http or https URL", u)
	}
	switch c.Archive.Type {
	case "local":
	case "s3":
		if c.Archive.S3.Endpoint == "" {
			return bad("archive.s3.endpoint", "missing")
		}
		if c.Archive.S3.Bucket == "" {
			return bad("archive.s3.bucket", "missing")
		}
		if c.Archive.S3.PartSize < 5<<20 {
			return bad("archive.s3.part_size", "%d is below 5MiB, the smallest S3 part", c.Archive.S3.PartSize)
		}
	default:
		return bad("archive.type", "%q is not one of local, s3", c.Archive.Type)
	}
	switch c.API.Auth {
	case "token", "none":
	default:
		return bad("api.auth", "%q is not one of token, none", c.API.Auth)
	}
	switch c.PutMedia.Auth {
	case "token", "none":
	default:
		return bad("putmedia.auth", "%q is not one of token, none", c.PutMedia.Auth)
	}
	if c.PutMedia.PersistedOn != "durable" && c.PutMedia.PersistedOn != "archive" {
		return bad("putmedia.persisted_on", "%q is not one of durable, archive", c.PutMedia.PersistedOn)
	}
	if c.PutMedia.MaxTracks < 1 || c.PutMedia.MaxTracks > 16 {
		return bad("putmedia.max_tracks", "%d is outside 1 to 16", c.PutMedia.MaxTracks)
	}
	switch c.Spool.Enabled {
	case "auto", "true", "false":
	default:
		return bad("spool.enabled", "%q is not one of auto, true, false", c.Spool.Enabled)
	}
	switch c.Spool.Strategy {
	case StrategyDeleteOldest, StrategyDenyNew:
	default:
		return bad("spool.strategy", "%q is not one of %s, %s", c.Spool.Strategy, StrategyDeleteOldest, StrategyDenyNew)
	}
	if c.Spool.MaxBytes < 1<<20 {
		return bad("spool.max_bytes", "%d is below 1MiB", c.Spool.MaxBytes)
	}
	if c.Spool.UploadConcurrency < 1 || c.Spool.UploadConcurrency > 256 {
		return bad("spool.upload_concurrency", "%d is outside 1 to 256", c.Spool.UploadConcurrency)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if err := validateFragment("defaults.fragment", c.Defaults.Fragment); err != nil {
		return err
	}
	if err := validTransport("defaults.transport", c.Defaults.Transport); err != nil {
		return err
	}
	if err := c.WebRTC.validate(); err != nil {
		return err
	}
	names := map[string]int{}
	for i, s := range c.Streams {
		key := fmt.Sprintf("streams[%d]", i)
		if err := fragment.ValidateStreamName(s.Name); err != nil {
			return bad(key+".name", "%v", err)
		}
		if j, dup := names[s.Name]; dup {
			return bad(key+".name", "%q is also the name of streams[%d]", s.Name, j)
		}
		names[s.Name] = i
		// a stream without a url takes pushes (PutMedia)
		if err := validTransport(key+".transport", s.Transport); err != nil {
			return err
		}
		if s.Container != fragment.ContainerFMP4 && s.Container != fragment.ContainerMKV {
			return bad(key+".container", "%q is not one of fmp4, mkv", s.Container)
		}
		if s.StallTimeout < Duration(time.Second) {
			return bad(key+".stall_timeout", "%v is below 1s", time.Duration(s.StallTimeout))
		}
		if err := validateFragment(key+".fragment", s.Fragment); err != nil {
			return err
		}
		if s.ONVIFMetadata && !strings.HasPrefix(s.URL, "rtsp://") && !strings.HasPrefix(s.URL, "rtsps://") {
			return bad(key+".onvif_metadata", "needs an rtsp:// or rtsps:// url (ONVIF metadata comes from RTSP cameras)")
		}
		if s.Sensor != nil {
			if err := s.Sensor.validate(key+".sensor", s.URL); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *SensorConfig) validate(key, url string) error {
	if url != "" {
		return badKey(key, "a sensor stream has no url (readings come from mqtt and pushes)")
	}
	if err := c.Timestamp.Validate(); err != nil {
		return badKey(key+".timestamp.format", "%v", err)
	}
	if p := time.Duration(c.Period); p < 100*time.Millisecond || p > time.Hour {
		return badKey(key+".period", "%v is outside 100ms to 1h", p)
	}
	if w := time.Duration(c.Window); w < 0 || w > 10*time.Minute {
		return badKey(key+".window", "%v is outside 0 to 10m", w)
	}
	if c.MaxReadingSize < 16 || c.MaxReadingSize > 1<<20 {
		return badKey(key+".max_reading_size", "%d is outside 16 bytes to 1MiB", c.MaxReadingSize)
	}
	if c.Link != "" {
		if err := fragment.ValidateStreamName(c.Link); err != nil {
			return badKey(key+".link", "%v", err)
		}
	}
	if c.AlignTo != "" {
		if err := fragment.ValidateStreamName(c.AlignTo); err != nil {
			return badKey(key+".align_to", "%v", err)
		}
	}
	if c.MaxRate < 1 || c.MaxRate > 1_000_000 {
		return badKey(key+".max_rate", "%d is outside 1 to 1000000", c.MaxRate)
	}
	if m := c.MQTT; m != nil {
		if m.QoS != nil && (*m.QoS < 0 || *m.QoS > 2) {
			return badKey(key+".mqtt.qos", "%d is not 0, 1 or 2", *m.QoS)
		}
		if err := m.client("x").Validate(); err != nil {
			return badKey(key+".mqtt", "%v", err)
		}
		if (m.CertFile == "") != (m.KeyFile == "") {
			return badKey(key+".mqtt.cert_file", "cert_file and key_file go together")
		}
	}
	return nil
}

// badKey names the key of a bad value.
func badKey(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
}

func (w WebRTCConfig) validate() error {
	bad := badKey
	if w.MaxPublishers < 1 || w.MaxPublishers > 1024 {
		return bad("webrtc.max_publishers", "%d is outside 1 to 1024", w.MaxPublishers)
	}
	for i, s := range w.ICEServers {
		key := fmt.Sprintf("webrtc.ice_servers[%d].urls", i)
		if len(s.URLs) == 0 {
			return bad(key, "no URL")
		}
		for _, u := range s.URLs {
			scheme, _, _ := strings.Cut(u, ":")
			switch scheme {
			case "stun", "stuns", "turn", "turns":
			default:
				return bad(key, "%q is not a stun:, stuns:, turn: or turns: URL", u)
			}
		}
	}
	for i, ip := range w.PublicIPs {
		if net.ParseIP(ip) == nil {
			return bad(fmt.Sprintf("webrtc.public_ips[%d]", i), "%q is not an IP address", ip)
		}
	}
	if _, _, err := parsePortRange(w.UDPPorts); err != nil {
		return bad("webrtc.udp_ports", "%v", err)
	}
	return nil
}

func validTransport(key, v string) error {
	switch v {
	case "auto", "tcp", "udp":
		return nil
	}
	return fmt.Errorf("%w: %s: %q is not one of auto, tcp, udp", ErrConfig, key, v)
}

func validateFragment(key string, f FragmentConfig) error {
	t := time.Duration(f.Target)
	if t < fragment.MinTarget || t > fragment.MaxTarget {
		return fmt.Errorf("%w: %s.target: %v is outside %v to %v", ErrConfig, key, t, fragment.MinTarget, fragment.MaxTarget)
	}
	if time.Duration(f.MaxDuration) > archive.MaxFragmentDuration {
		return fmt.Errorf("%w: %s.max_duration: %v is above %v, the longest fragment the archive's listing looks back for", ErrConfig, key, time.Duration(f.MaxDuration), archive.MaxFragmentDuration)
	}
	if time.Duration(f.MaxDuration) < t {
		return fmt.Errorf("%w: %s.max_duration: %v is below the target %v", ErrConfig, key, time.Duration(f.MaxDuration), t)
	}
	if f.MaxBytes < 1<<20 {
		return fmt.Errorf("%w: %s.max_bytes: %d is below 1MiB", ErrConfig, key, f.MaxBytes)
	}
	return nil
}
