package inspect_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

// TestStoreFilesPrivate: the database, its WAL and its shared-memory file
// (which hold message bodies) are 0600 from the first write, also when an
// older version left them wider.
func TestStoreFilesPrivate(t *testing.T) {
	tests := []struct {
		name   string
		before func(t *testing.T, path string) // what is on disk before Open
	}{
		{"new store", func(*testing.T, string) {}},
		{"database left 0644", func(t *testing.T, path string) {
			s, err := inspect.Open(path, inspect.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"empty database file 0666", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, 0o666)
		}},
		{"WAL and shm left 0644", func(t *testing.T, path string) {
			for _, p := range []string{path + "-wal", path + "-shm"} {
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "data", inspect.FileName)
			os.MkdirAll(filepath.Dir(path), 0o700)
			tc.before(t, path)
			s, err := inspect.Open(path, inspect.Options{KeepBodies: time.Hour, Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, e := range storetest.NewSample(t0).Events {
				s.Record(e)
			}
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if perm := st.Mode().Perm(); perm != 0o600 {
					t.Errorf("%s is %s, want -rw-------", filepath.Base(p), perm)
				}
			}
		})
	}
}
