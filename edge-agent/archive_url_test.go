package edgeagent

import (
	"strings"
	"testing"
)

func TestParseArchiveURL(t *testing.T) {
	c, err := ParseArchiveURL("s3://media/site-a?endpoint=127.0.0.1:7070&create_bucket=true&region=eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != "s3" || c.S3.Bucket != "media" || c.Prefix != "site-a" || c.S3.Endpoint != "127.0.0.1:7070" || !c.S3.CreateBucket || c.S3.Region != "eu-west-1" {
		t.Errorf("%+v", c)
	}
	if c, err := ParseArchiveURL("/tmp/archive"); err != nil || c.Type != "local" || c.Path != "/tmp/archive" {
		t.Errorf("%+v %v", c, err)
	}
	if c, err := ParseArchiveURL("file:///tmp/a"); err != nil || c.Type != "local" || c.Path != "/tmp/a" {
		t.Errorf("%+v %v", c, err)
	}
	for in, want := range map[string]string{
		"s3://b?endpoint=h&tls=maybe":  "tls",
		"s3://b":                       "endpoint",
		"s3://k:s@b?endpoint=h":        "credentials",
		"s3://b?endpoint=h&colour=red": "colour",
		"ftp://x":                      "scheme",
		"":                             "empty",
	} {
		if _, err := ParseArchiveURL(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseArchiveURL(%q) = %v, want an error about %s", in, err, want)
		}
	}
}
