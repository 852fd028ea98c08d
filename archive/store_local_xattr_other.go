//go:build !linux

package archive

import (
	"errors"
	"os"
)

// Local keeps metadata in sidecar files here.

func fsetxattr(f *os.File, name string, val []byte) error { return errors.ErrUnsupported }

func getxattr(f *os.File, path, name string) ([]byte, error) { return nil, errXattrAbsent }
