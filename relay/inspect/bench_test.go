package inspect

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

const benchMessages = storetest.BenchMessages

// benchStore returns the path of a store with benchMessages messages,
// building it on first use and caching it under os.TempDir (keyed by the
// schema version) so that reruns start at once.
func benchStore(b *testing.B) string {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("mjrelay-inspect-bench-v%d-%d.db", schemaVersion, benchMessages))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".building"
	for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		os.Remove(p)
	}
	start := time.Now()
	events, err := buildBenchStore(tmp, benchMessages)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	os.Remove(tmp + "-wal")
	os.Remove(tmp + "-shm")
	fi, _ := os.Stat(path)
	b.Logf("built %s: %d messages, %d events in %s, %d MiB", path, benchMessages, events,
		time.Since(start).Round(time.Second), fi.Size()>>20)
	return path
}

// buildBenchStore fills a store through the writer's own code, in one
// transaction with its prepared statements.
func buildBenchStore(path string, n int) (int, error) {
	wdb, err := openDB(path, 1, false)
	if err != nil {
		return 0, err
	}
	defer wdb.Close()
	if _, err := migrate(wdb, slog.New(slog.DiscardHandler)); err != nil {
		return 0, err
	}
	s := &Store{opts: Options{Now: time.Now, Retention: 24 * 365 * time.Hour}, log: slog.New(slog.DiscardHandler), wdb: wdb}
	w, err := newWriter(s)
	if err != nil {
		return 0, err
	}
	defer w.conn.Close()
	g := storetest.NewTrafficGen(1)
	count := 0
	err = w.tx(func() error {
		for i := range n {
			evs, mj := g.Message(i, n)
			for j := range evs {
				if err := w.apply(&store.Entry{Ev: evs[j]}); err != nil {
					return err
				}
			}
			for j := range mj {
				if err := w.applyMailjet(&mj[j]); err != nil {
					return err
				}
			}
			count += len(evs) + len(mj)
			if len(w.dirty) > 1000 {
				if err := w.flushRows(); err != nil {
					return err
				}
			}
		}
		if err := w.flushRows(); err != nil {
			return err
		}
		return w.flushStats()
	})
	if err != nil {
		return 0, err
	}
	_, err = w.conn.ExecContext(w.ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return count, err
}

// BenchmarkStoreQuery times the common queries over a store of 1,000,000
// messages: go test -run XXX -bench Store ./relay/inspect/
func BenchmarkStoreQuery(b *testing.B) {
	path := benchStore(b)
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchQueries(b, s)
}

// BenchmarkStoreRecord measures the writer's sustained rate through Record
// (each op is one message: received, attempt, delivered, and a Mailjet
// event for 60% of them) on top of a 1,000,000-message store.
func BenchmarkStoreRecord(b *testing.B) {
	src := benchStore(b)
	path := filepath.Join(b.TempDir(), "store.db")
	if err := copyFile(src, path); err != nil {
		b.Fatal(err)
	}
	s, err := Open(path, Options{Retention: 24 * 365 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchRecord(b, s, s.opts.Buffer/2)
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}
