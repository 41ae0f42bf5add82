package inspect_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

// TestConformance runs the traffic store suite against the SQLite store.
func TestConformance(t *testing.T) { storetest.Run(t, harness()) }

// harness opens stores in temporary directories. A crash is a copy of
// the database and its write-ahead log taken while the store is open,
// opened as the next start would find them (SQLite rebuilds the WAL index,
// which the copy leaves out, from the log).
func harness() storetest.Harness {
	return storetest.Harness{
		Place: func(t *testing.T) string { return t.TempDir() },
		Open: func(t *testing.T, dir string, o storetest.Options) store.Store {
			s, err := inspect.Open(inspect.Path(dir), inspect.Options{Now: o.Now, Retention: o.Retention, KeepBodies: o.KeepBodies})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Crash: func(t *testing.T, dir string) string {
			to := t.TempDir()
			for _, name := range []string{inspect.FileName, inspect.FileName + "-wal"} {
				data, err := os.ReadFile(filepath.Join(dir, name))
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err == nil {
					err = os.WriteFile(filepath.Join(to, name), data, 0o600)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			return to
		},
	}
}
