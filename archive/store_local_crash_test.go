package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// crashBody is version v of the object the crash test writes: 1 MB (direct
// I/O) plus a partial block, a different byte pattern per version.
func crashBody(v int) []byte {
	b := make([]byte, 1<<20+777)
	for i := range b {
		b[i] = byte(v*7 + i%253)
	}
	return b
}

// TestLocalKilledMidPut kills a process that overwrites one key in a loop
// (SIGKILL, at random moments) and checks what it leaves: the object is
// whole, one of the versions, and its record (ETag, metadata) is that
// version's; nothing but temporary files is left beside it.
func TestLocalKilledMidPut(t *testing.T) {
	if dir := os.Getenv("ARCHIVE_CRASH_ROOT"); dir != "" {
		crashWriter(dir)
		return
	}
	if testing.Short() {
		t.Skip("short")
	}
	root := t.TempDir()
	ctx := context.Background()
	s := &Local{Root: root}
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLocalKilledMidPut$")
		cmd.Env = append(os.Environ(), "ARCHIVE_CRASH_ROOT="+root)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()

		rc, info, err := s.Get(ctx, "k/obj", nil)
		if err != nil {
			t.Logf("round %d: nothing stored yet: %v", round, err)
			continue
		}
		var got bytes.Buffer
		got.ReadFrom(rc)
		rc.Close()
		v, err := strconv.Atoi(info.Metadata["v"])
		if err != nil {
			t.Fatalf("round %d: record without its metadata: %+v", round, info)
		}
		sum := sha256.Sum256(got.Bytes())
		if !bytes.Equal(got.Bytes(), crashBody(v)) || info.ETag != `"`+hex.EncodeToString(sum[:16])+`"` {
			t.Fatalf("round %d: object of %d bytes is not version %d, or its ETag %s is another's", round, got.Len(), v, info.ETag)
		}
		entries, _ := os.ReadDir(root + "/k")
		for _, e := range entries {
			if e.Name() != "obj" && !bytes.HasPrefix([]byte(e.Name()), []byte(LocalTempPrefix)) {
				t.Errorf("round %d: visible file %s", round, e.Name())
			}
		}
		t.Logf("round %d: version %d intact, %d temporary files", round, v, len(entries)-1)
	}
	if _, err := s.CleanTemp(ctx, 0); err != nil {
		t.Fatal(err)
	}
}

// crashWriter overwrites k/obj with successive versions until killed.
func crashWriter(root string) {
	s := &Local{Root: root}
	for v := 0; ; v++ {
		body := crashBody(v)
		sum := sha256.Sum256(body)
		opts := PutOptions{Metadata: map[string]string{"v": fmt.Sprint(v)}}
		if v%2 == 0 {
			opts.ContentSHA256 = hex.EncodeToString(sum[:])
		}
		if _, err := s.Put(context.Background(), "k/obj", bytes.NewReader(body), int64(len(body)), opts); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
