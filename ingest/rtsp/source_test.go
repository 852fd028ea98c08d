package rtsp

import "testing"

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"rtsp://admin:secret@10.0.0.1:554/s1", "rtsp://REDACTED@10.0.0.1:554/s1"},
		{"rtsp://10.0.0.1/s1", "rtsp://10.0.0.1/s1"},
		{"rtsp://admin:se%zzcret@10.0.0.1/s1", "rtsp://REDACTED@10.0.0.1/s1"},
		{"admin:secret@host", "REDACTED@host"},
	}
	for _, c := range cases {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		url, transport string
		ok             bool
	}{
		{"rtsp://h/p", "", true},
		{"rtsps://h/p", "tcp", true},
		{"http://h/p", "", false},
		{"rtsp:///p", "", false},
		{"rtsp://h/p", "sctp", false},
		{"::bad", "", false},
	}
	for _, c := range cases {
		err := (&Source{URL: c.url, Transport: c.transport}).Validate()
		if (err == nil) != c.ok {
			t.Errorf("Validate(%q, %q) = %v", c.url, c.transport, err)
		}
	}
}
