package archive

import (
	"errors"
	"strings"
	"testing"
)

var keyCases = []struct {
	key string
	ok  bool
}{
	{"a", true},
	{"streams/cam1/f/2026/11/27/03/0000000000001-00000000000000000001.m4s", true},
	{"a/b.c/d-e_f", true},
	{"ünïcode/ключ", true},
	{"", false},
	{"/a", false},
	{"a/", false},
	{"a//b", false},
	{"./a", false},
	{"a/./b", false},
	{"a/..", false},
	{"../x", false},
	{"a\\b", false},
	{"a\x00b", false},
	{"\xff", false},
	{strings.Repeat("a", MaxKeyLen), true},
	{strings.Repeat("a", MaxKeyLen+1), false},
}

func TestValidateKey(t *testing.T) {
	for _, tc := range keyCases {
		err := ValidateKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, does not wrap ErrInvalidKey", tc.key, err)
		}
	}
}

func TestValidateUserMetadata(t *testing.T) {
	for _, tc := range []struct {
		name string
		md   map[string]string
		ok   bool
	}{
		{"nil", nil, true},
		{"plain", map[string]string{"camera-id": "cam 1", "Number": "42"}, true},
		{"empty key", map[string]string{"": "x"}, false},
		{"underscore", map[string]string{"a_b": "x"}, false},
		{"space in key", map[string]string{"a b": "x"}, false},
		{"non-ascii value", map[string]string{"a": "é"}, false},
		{"newline", map[string]string{"a": "x\ny"}, false},
		{"leading space", map[string]string{"a": " x"}, false},
		{"case duplicate", map[string]string{"a": "x", "A": "y"}, false},
		{"at limit", map[string]string{"k": strings.Repeat("v", MaxUserMetadataSize-1)}, true},
		{"over limit", map[string]string{"k": strings.Repeat("v", MaxUserMetadataSize)}, false},
	} {
		err := ValidateUserMetadata(tc.md)
		if (err == nil) != tc.ok {
			t.Errorf("%s: ValidateUserMetadata = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidMetadata) {
			t.Errorf("%s: %v does not wrap ErrInvalidMetadata", tc.name, err)
		}
	}
}

func TestRangeResolve(t *testing.T) {
	for _, tc := range []struct {
		r         Range
		size      int64
		off, n    int64
		wantError bool
	}{
		{Range{0, -1}, 10, 0, 10, false},
		{Range{0, 0}, 10, 0, 1, false},
		{Range{3, 5}, 10, 3, 3, false},
		{Range{9, -1}, 10, 9, 1, false},
		{Range{5, 100}, 10, 5, 5, false},
		{Range{10, -1}, 10, 0, 0, true},
		{Range{-1, 3}, 10, 0, 0, true},
		{Range{5, 4}, 10, 0, 0, true},
		{Range{0, -2}, 10, 0, 0, true},
		{Range{0, -1}, 0, 0, 0, true},
	} {
		off, n, err := tc.r.Resolve(tc.size)
		if (err != nil) != tc.wantError || off != tc.off || n != tc.n {
			t.Errorf("%v.Resolve(%d) = %d, %d, %v; want %d, %d, error %v", tc.r, tc.size, off, n, err, tc.off, tc.n, tc.wantError)
		}
		if err != nil && !errors.Is(err, ErrInvalidRange) {
			t.Errorf("%v: %v does not wrap ErrInvalidRange", tc.r, err)
		}
	}
}
