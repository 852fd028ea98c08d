package edgeagent

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const goodConfig = `
data_dir: /var/lib/tributary
http:
  listen: 0.0.0.0:9000
defaults:
  stall_timeout: 3s
  fragment:
    target: 4s
streams:
  - name: cam1
    url: rtsp://u:p@10.0.0.1/s
    transport: tcp
    fragment:
      target: 1s
      max_bytes: 32MiB
  - name: cam2
    url: rtsp://10.0.0.2/s
    tags: {site: a}
`

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(goodConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := cfg.Streams[0], cfg.Streams[1]
	if time.Duration(s1.Fragment.Target) != time.Second || s1.Fragment.MaxBytes != 32<<20 || s1.Transport != "tcp" {
		t.Errorf("cam1 %+v", s1)
	}
	if time.Duration(s2.Fragment.Target) != 4*time.Second || time.Duration(s2.StallTimeout) != 3*time.Second || s2.Transport != "auto" {
		t.Errorf("cam2 defaults not applied: %+v", s2)
	}
	if cfg.Archive.Path != "/var/lib/tributary/archive" || cfg.HTTP.Listen != "0.0.0.0:9000" {
		t.Errorf("cfg %+v", cfg)
	}
}

func TestParseConfigEnv(t *testing.T) {
	env := []string{"TRIBUTARY_HTTP_LISTEN=127.0.0.1:1234", "TRIBUTARY_STREAMS_1_URL=rtsp://secret@h/x",
		"TRIBUTARY_DEFAULTS_FRAGMENT_TARGET=3s", "PATH=/bin", "TRIBUTARY_CONFIG=/x.yaml"}
	cfg, err := ParseConfig(strings.NewReader(goodConfig), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != "127.0.0.1:1234" || cfg.Streams[1].URL != "rtsp://secret@h/x" || time.Duration(cfg.Streams[1].Fragment.Target) != 3*time.Second {
		t.Errorf("env not applied: %+v", cfg)
	}
	if _, err := ParseConfig(strings.NewReader(goodConfig), []string{"TRIBUTARY_HTTP_LISTN=x"}); err == nil || !strings.Contains(err.Error(), "TRIBUTARY_HTTP_LISTN") {
		t.Errorf("unknown env key: %v", err)
	}
	if _, err := ParseConfig(strings.NewReader(goodConfig), []string{"TRIBUTARY_DEFAULTS_STALL_TIMEOUT=soon"}); err == nil || !strings.Contains(err.Error(), "TRIBUTARY_DEFAULTS_STALL_TIMEOUT") {
		t.Errorf("bad env duration: %v", err)
	}
}

var badConfigs = []struct {
	name, yaml, want string
}{
	{"unknown top key", "htp: {}\n", "htp (line 1): unknown key"},
	{"unknown nested key", "streams:\n  - name: a\n    url: rtsp://h/\n    fragmnt: {}\n", "streams[0].fragmnt (line 4): unknown key"},
	{"duration not a string", "defaults:\n  stall_timeout: 5\n", "not a duration"},
	{"bad duration", "defaults:\n  fragment:\n    target: two seconds\n", "not a duration"},
	{"target too small", "defaults:\n  fragment:\n    target: 100ms\n", "defaults.fragment.target"},
	{"target too large", "streams:\n  - name: a\n    url: rtsp://h/\n    fragment: {target: 11s}\n", "streams[0].fragment.target"},
	{"max below target", "defaults:\n  fragment: {target: 5s, max_duration: 4s}\n", "max_duration"},
	{"bad size", "defaults:\n  fragment: {max_bytes: lots}\n", "not a size"},
	{"bad name", "streams:\n  - name: ../etc\n    url: rtsp://h/\n", "streams[0].name"},
	{"dup name", "streams:\n  - {name: a, url: rtsp://h/}\n  - {name: a, url: rtsp://h/}\n", "streams[1].name"},
	{"bad putmedia auth", "putmedia: {auth: maybe}\n", "putmedia.auth"},
	{"bad transport", "streams:\n  - {name: a, url: rtsp://h/, transport: sctp}\n", "streams[0].transport"},
	{"streams not a list", "streams: {a: 1}\n", "streams (line 1): must be a list"},
	{"bad archive type", "archive: {type: ftp}\n", "archive.type"},
	{"bad log level", "log: {level: loud}\n", "log.level"},
	{"not yaml", "streams: [\n", "config"},
	{"unknown hook kind", "inference:\n  hooks:\n    - {model: m, kind: lambda, url: http://h/}\n", "inference.hooks[0].kind"},
	{"unknown hook key", "inference:\n  hooks:\n    - {model: m, kind: sagemaker, url: http://h/, sample: 3}\n", "inference.hooks[0].sample (line 3): unknown key"},
	{"bad hook url", "inference:\n  hooks:\n    - {model: m, kind: sagemaker, url: 'ftp://h/'}\n", "inference.hooks[0].url"},
	{"hook sampling out of range", "inference:\n  hooks:\n    - {model: m, kind: webhook, url: http://h/, every: -1}\n", "inference.hooks[0].every"},
	{"hook timeout not a duration", "inference:\n  hooks:\n    - {model: m, kind: sagemaker, url: http://h/, timeout: soon}\n", "soon"},
	{"dup model", "inference:\n  hooks:\n    - {model: m, kind: sagemaker, url: http://h/}\n    - {model: m, kind: webhook, url: http://h/}\n", "inference.hooks[1].model"},
	{"bad placement", "inference:\n  hooks:\n    - {model: m, kind: sagemaker, url: http://h/, placement: cloud}\n", "inference.hooks[0].placement"},
	{"bad consumer group", "inference:\n  consumer: {group: a/b}\n", "inference.consumer.group"},
	{"bad ICE server", "webrtc:\n  ice_servers:\n    - urls: ['http://stun.example']\n", "webrtc.ice_servers[0].urls"},
	{"ICE server without URL", "webrtc:\n  ice_servers:\n    - {username: u}\n", "webrtc.ice_servers[0].urls"},
	{"bad public IP", "webrtc: {public_ips: [gateway.local]}\n", "webrtc.public_ips[0]"},
	{"bad UDP ports", "webrtc: {udp_ports: 50000-40000}\n", "webrtc.udp_ports"},
	{"too many publishers", "webrtc: {max_publishers: 5000}\n", "webrtc.max_publishers"},
	{"unknown webrtc key", "webrtc: {stun: x}\n", "webrtc.stun (line 1): unknown key"},
	{"readings at the archive", "inference:\n  hooks:\n    - {model: m, kind: sagemaker, url: http://h/, placement: archive, readings: [env]}\n", "inference.hooks[0].readings"},
	{"ONVIF metadata over WHEP", "streams:\n  - {name: s, url: 'whep://h/whep', onvif_metadata: true}\n", "streams[0].onvif_metadata"},
	{"sensor with a url", "streams:\n  - {name: s, url: rtsp://h/, sensor: {}}\n", "streams[0].sensor"},
	{"sensor period", "streams:\n  - {name: s, sensor: {period: 5ms}}\n", "streams[0].sensor.period"},
	{"sensor timestamp format", "streams:\n  - {name: s, sensor: {timestamp: {field: ts, format: fortnights}}}\n", "streams[0].sensor.timestamp.format"},
	{"sensor broker", "streams:\n  - {name: s, sensor: {mqtt: {broker: 'http://b', topics: [a]}}}\n", "streams[0].sensor.mqtt"},
	{"sensor without topics", "streams:\n  - {name: s, sensor: {mqtt: {broker: 'tcp://b:1883'}}}\n", "streams[0].sensor.mqtt"},
	{"sensor qos", "streams:\n  - {name: s, sensor: {mqtt: {broker: 'tcp://b:1883', topics: [a], qos: 3}}}\n", "streams[0].sensor.mqtt.qos"},
	{"sensor link", "streams:\n  - {name: s, sensor: {link: ../x}}\n", "streams[0].sensor.link"},
	{"sensor align_to", "streams:\n  - {name: s, sensor: {align_to: 'a b'}}\n", "streams[0].sensor.align_to"},
	{"unknown sensor key", "streams:\n  - {name: s, sensor: {topic: a}}\n", "streams[0].sensor.topic (line 2): unknown key"},
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range badConfigs {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(c.yaml), nil)
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	cases := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"64MiB", 64 << 20, true}, {"1GB", 1e9, true}, {"1024", 1024, true}, {"1.5KiB", 1536, true},
		{"", 0, false}, {"-1MB", 0, false}, {"MB", 0, false}, {"1e30GB", 0, false},
	}
	for _, c := range cases {
		got, err := ParseByteSize(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseByteSize(%q) = %d, %v", c.in, got, err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(goodConfig)
	for _, c := range badConfigs {
		f.Add(c.yaml)
	}
	f.Fuzz(func(t *testing.T, y string) {
		cfg, err := ParseConfig(strings.NewReader(y), nil)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error without ErrConfig: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
	})
}
