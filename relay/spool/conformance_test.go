package spool_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/queue/queuetest"
	"github.com/mjrelay/mjrelay/relay/spool"
)

// TestConformance runs the queue suite against the spool.
func TestConformance(t *testing.T) { queuetest.Run(t, harness()) }

// harness opens spools in temporary directories. A crash is a copy of the
// queue directory taken while the spool is open and writing (torn records
// and all), opened as the next start would find it.
func harness() queuetest.Harness {
	return queuetest.Harness{
		Place: func(t *testing.T) string { return t.TempDir() },
		Open: func(t *testing.T, dir string, l queuetest.Limits) queue.Queue {
			return open(t, dir, spool.Options{MaxMessages: l.MaxMessages, MaxBytes: l.MaxBytes})
		},
		Crash: crashCopy,
	}
}

// crashCopy copies the queue directory dir as it is on disk now into a new
// one. Maintenance may remove a segment while it is copied (after copying
// its messages forward); the copy is then taken again, so that no segment
// the queue needs is missing from it.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	for try := 0; ; try++ {
		to := t.TempDir()
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(to, rel), 0o700)
			}
			return copyFile(p, filepath.Join(to, rel))
		})
		if err == nil {
			return to
		}
		if !errors.Is(err, fs.ErrNotExist) || try == 10 {
			t.Fatal(err)
		}
	}
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
