//go:build !linux

package archive

import "os"

// setDirect reports false: Local writes through the page cache here.
func setDirect(f *os.File, on bool) bool { return !on }
