package edgeagent

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ParseArchiveURL reads an archive given on a command line:
//
//	/var/lib/tributary/archive          a local directory (or file:///path)
//	s3://BUCKET[/PREFIX]?endpoint=HOST:PORT[&region=R][&tls=true][&path_style=true][&create_bucket=true][&ca_file=F]
//
// S3 credentials come from the environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY) or a credentials_file parameter, never from the
// URL, so they stay out of shell history and process lists.
func ParseArchiveURL(raw string) (ArchiveConfig, error) {
	if !strings.Contains(raw, "://") {
		if raw == "" {
			return ArchiveConfig{}, fmt.Errorf("%w: archive: empty", ErrConfig)
		}
		return ArchiveConfig{Type: "local", Path: raw}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ArchiveConfig{}, fmt.Errorf("%w: archive: %v", ErrConfig, err)
	}
	switch u.Scheme {
	case "file":
		return ArchiveConfig{Type: "local", Path: u.Path}, nil
	case "s3":
	default:
		return ArchiveConfig{}, fmt.Errorf("%w: archive: scheme %q is not s3 or file", ErrConfig, u.Scheme)
	}
	if u.User != nil {
		return ArchiveConfig{}, fmt.Errorf("%w: archive: credentials do not go in the URL: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or credentials_file", ErrConfig)
	}
	c := ArchiveConfig{Type: "s3", Prefix: strings.Trim(u.Path, "/")}
	c.S3.Bucket = u.Host
	q := u.Query()
	boolParam := func(name string, dst *bool) error {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%w: archive: %s=%q is not true or false", ErrConfig, name, v)
			}
			*dst = b
		}
		return nil
	}
	for name := range q {
		switch name {
		case "endpoint", "region", "tls", "path_style", "create_bucket", "ca_file", "credentials_file":
		default:
			return ArchiveConfig{}, fmt.Errorf("%w: archive: unknown parameter %q (endpoint, region, tls, path_style, create_bucket, ca_file, credentials_file)", ErrConfig, name)
		}
	}
	c.S3.Endpoint = q.Get("endpoint")
	c.S3.Region = q.Get("region")
	c.S3.CAFile = q.Get("ca_file")
	c.S3.CredentialsFile = q.Get("credentials_file")
	for name, dst := range map[string]*bool{"tls": &c.S3.TLS, "path_style": &c.S3.PathStyle, "create_bucket": &c.S3.CreateBucket} {
		if err := boolParam(name, dst); err != nil {
			return ArchiveConfig{}, err
		}
	}
	if c.S3.Endpoint == "" {
		return ArchiveConfig{}, fmt.Errorf("%w: archive: s3 URL without ?endpoint=HOST:PORT", ErrConfig)
	}
	return c, nil
}

// String describes an archive config for people (no credentials).
func (c ArchiveConfig) String() string {
	if c.Type == "s3" {
		s := "s3://" + c.S3.Bucket
		if c.Prefix != "" {
			s += "/" + c.Prefix
		}
		return s + " at " + c.S3.Endpoint
	}
	return c.Path
}
