package spooltest

import (
	"testing"

	"github.com/mjrelay/mjrelay/relay/spool"
)

// Open opens a spool in dir ("": a new temporary directory), closed when
// the test ends.
func Open(t testing.TB, dir string, o spool.Options) *spool.Spool {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	sp, err := spool.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}
