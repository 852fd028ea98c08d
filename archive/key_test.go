package archive

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/fragment"
)

func TestLayoutKeys(t *testing.T) {
	start := time.Date(2026, 11, 27, 3, 4, 5, 678_900_000, time.FixedZone("CET", 3600)) // 02:04 UTC
	for _, tc := range []struct {
		prefix, want string
	}{
		{"", "streams/cam1/"},
		{"site-a", "site-a/streams/cam1/"},
		{"/site-a/b/", "site-a/b/streams/cam1/"},
	} {
		l := Layout{Prefix: tc.prefix}
		check := func(what, got string, err error, want string) {
			t.Helper()
			if err != nil || got != want {
				t.Errorf("prefix %q: %s = %q, %v; want %q", tc.prefix, what, got, err, want)
			}
			if err == nil && !strings.HasSuffix(want, "/") {
				if err := ValidateKey(got); err != nil {
					t.Errorf("%s: %v", what, err)
				}
			}
		}
		root := strings.TrimSuffix(tc.want, "cam1/")
		got, err := l.StreamsPrefix()
		check("StreamsPrefix", got, err, root)
		got, err = l.StreamKey("cam1")
		check("StreamKey", got, err, tc.want+"stream.json")
		got, err = l.InitKey("cam1", "0123456789abcdef")
		check("InitKey", got, err, tc.want+"init/0123456789abcdef.mp4")
		got, err = l.FragmentsPrefix("cam1")
		check("FragmentsPrefix", got, err, tc.want+"f/")
		got, err = l.HourIndexKey("cam1", start)
		check("HourIndexKey", got, err, tc.want+"f/2026/11/27/02/index.json")
		got, err = l.FragmentKeyAt("cam1", start, 7, fragment.ContainerFMP4)
		check("FragmentKeyAt", got, err, tc.want+"f/2026/11/27/02/1795745045678-00000000000000000007.m4s")
		m := fragment.Metadata{Stream: "cam1", ProducerStart: start, Number: 1<<64 - 1, Container: fragment.ContainerMKV}
		got, err = l.FragmentKey(m)
		check("FragmentKey", got, err, tc.want+"f/2026/11/27/02/1795745045678-18446744073709551615.mkv")

		stream, ms, n, c, err := ParseFragmentKey(got)
		if err != nil || stream != "cam1" || ms != start.UnixMilli() || n != m.Number || c != fragment.ContainerMKV {
			t.Errorf("ParseFragmentKey(%q) = %q, %d, %d, %q, %v", got, stream, ms, n, c, err)
		}
	}
	// A camera without NTP: 1970, zero-padded.
	got, err := Layout{}.FragmentKeyAt("cam1", time.UnixMilli(1234), 1, fragment.ContainerFMP4)
	if err != nil || got != "streams/cam1/f/1970/01/01/00/0000000001234-00000000000000000001.m4s" {
		t.Errorf("1970 key = %q, %v", got, err)
	}
}

var badStreamNames = []string{"", "../x", "a/b", ".hidden", "-x", "a b", "x\x00", "é", strings.Repeat("a", 257)}

func TestLayoutRejects(t *testing.T) {
	l := Layout{}
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	for _, name := range badStreamNames {
		for what, f := range map[string]func() (string, error){
			"StreamKey":       func() (string, error) { return l.StreamKey(name) },
			"InitKey":         func() (string, error) { return l.InitKey(name, "ab") },
			"FragmentsPrefix": func() (string, error) { return l.FragmentsPrefix(name) },
			"HourIndexKey":    func() (string, error) { return l.HourIndexKey(name, now) },
			"FragmentKeyAt":   func() (string, error) { return l.FragmentKeyAt(name, now, 1, fragment.ContainerFMP4) },
		} {
			if k, err := f(); !errors.Is(err, fragment.ErrInvalidStreamName) {
				t.Errorf("%s(%q) = %q, %v; want ErrInvalidStreamName", what, name, k, err)
			}
		}
	}
	for what, f := range map[string]func() (string, error){
		"bad container": func() (string, error) { return l.FragmentKeyAt("cam1", now, 1, "avi") },
		"before 1970":   func() (string, error) { return l.FragmentKeyAt("cam1", time.UnixMilli(-1), 1, fragment.ContainerFMP4) },
		"after 2286": func() (string, error) {
			return l.FragmentKeyAt("cam1", time.UnixMilli(MaxStartMs+1), 1, fragment.ContainerFMP4)
		},
		"bad hash":         func() (string, error) { return l.InitKey("cam1", "../AB") },
		"empty hash":       func() (string, error) { return l.InitKey("cam1", "") },
		"bad prefix":       func() (string, error) { return Layout{Prefix: "a/../b"}.StreamKey("cam1") },
		"hour before 1970": func() (string, error) { return l.HourIndexKey("cam1", time.Unix(-3600, 0)) },
	} {
		if k, err := f(); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: %q, %v; want ErrInvalidKey", what, k, err)
		}
	}
}

// fragmentKeyCases are inputs of ParseFragmentKey, valid or not; they seed
// FuzzParseFragmentKey.
var fragmentKeyCases = []struct {
	key string
	ok  bool
}{
	{"streams/cam1/f/2026/11/27/02/1795745045678-00000000000000000007.m4s", true},
	{"site/a/streams/cam1/f/2026/11/27/02/1795745045678-00000000000000000007.mkv", true},
	{"streams/cam1/f/1970/01/01/00/0000000000000-00000000000000000000.m4s", true},
	{"streams/cam1/f/2286/11/20/17/9999999999999-18446744073709551615.m4s", true},
	{"streams/cam1/f/2286/11/20/17/9999999999999-18446744073709551616.m4s", false}, // number overflows
	{"streams/cam1/f/2026/11/27/03/1795745045678-00000000000000000007.m4s", false}, // wrong hour
	{"streams/cam1/f/2026/11/27/02/index.json", false},
	{"streams/cam1/f/2026/11/27/02/1795745045678-0000000000000000007.m4s", false}, // 19 digits
	{"streams/cam1/f/2026/11/27/02/1795745045678_00000000000000000007.m4s", false},
	{"streams/cam1/f/2026/11/27/02/1795745045678-00000000000000000007.mp4", false},
	{"streams/cam1/f/2026/11/27/02/+764209045678-00000000000000000007.m4s", false},
	{"streams/../f/2026/11/27/02/1795745045678-00000000000000000007.m4s", false},
	{"streams/.hidden/f/2026/11/27/02/1795745045678-00000000000000000007.m4s", false},
	{"streams/cam1/g/2026/11/27/02/1795745045678-00000000000000000007.m4s", false},
	{"stream/cam1/f/2026/11/27/02/1795745045678-00000000000000000007.m4s", false},
	{"/streams/cam1/f/2026/11/27/02/1795745045678-00000000000000000007.m4s", false},
	{"a//streams/cam1/f/2026/11/27/02/1795745045678-00000000000000000007.m4s", false},
	{"streams/cam1/f/2026/11/27/1795745045678-00000000000000000007.m4s", false},
	{"streams/cam1/f/x2026/11/27/02/1795745045678-00000000000000000007.m4s", false},
	{"streams/cam1/f/2026/11/2/702/1795745045678-00000000000000000007.m4s", false},
	{"streams/cam1/f/2026/11/27/02/", false},
	{"", false},
}

func TestParseFragmentKey(t *testing.T) {
	for _, tc := range fragmentKeyCases {
		_, _, _, _, err := ParseFragmentKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ParseFragmentKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseFragmentKey(%q) = %v, does not wrap ErrInvalidKey", tc.key, err)
		}
	}
}

// FuzzParseFragmentKey checks that whatever ParseFragmentKey accepts is
// exactly the key the layout builds from the parts.
func FuzzParseFragmentKey(f *testing.F) {
	for _, tc := range fragmentKeyCases {
		f.Add(tc.key)
	}
	f.Fuzz(func(t *testing.T, key string) {
		stream, ms, n, c, err := ParseFragmentKey(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error %v does not wrap ErrInvalidKey", err)
			}
			return
		}
		i := strings.LastIndex(key, "streams/"+stream+"/f/")
		got, err := Layout{Prefix: key[:i]}.FragmentKeyAt(stream, time.UnixMilli(ms), n, c)
		if err != nil || got != key {
			t.Fatalf("ParseFragmentKey(%q) = %q %d %d %q; rebuilt %q, %v", key, stream, ms, n, c, got, err)
		}
		if err := ValidateKey(key); err != nil {
			t.Fatalf("accepted an invalid key: %v", err)
		}
	})
}
