// Package inspect is the embedded traffic store (a store.Store): an SQLite
// database (data_dir/store.db, WAL) that keeps, for every message the relay
// received or refused, its envelope and headers, class, policy verdict,
// every delivery attempt, the Mailjet events that came back by webhook and
// the resulting state, plus the raw message for a while after delivery.
//
// The relay's hot path only ever calls [Store.Record], which never touches
// the disk: it hands the event to a buffered channel (Options.Buffer,
// 131,072 events by default) and returns. One writer goroutine drains the
// channel and commits whatever has accumulated in one transaction, so
// batches grow with the load; WAL checkpoints run beside it. When the
// channel is full, Record drops the event instead of waiting, counts it
// ([Store.Health], exported as mjrelay_inspect_dropped_events_total) and
// logs how many were lost at most once a minute: the inspection record of
// those messages is then incomplete; the messages themselves are not
// affected (the spool is the durable copy). Raw bodies waiting for the
// writer are capped too (Options.MaxPendingBodyBytes); past the cap the
// record is kept without its body.
//
// Sizing: 5,000 msg/s × ~3 events is 15,000 events/s. BenchmarkStoreRecord
// measures the writer's sustained rate on top of a 1,000,000-message store
// (about 18,000-25,000 events/s on a shared 2-core machine), so the buffer
// only absorbs stalls of the disk: 131,072 events are about 9 s of that
// load. A store that cannot keep up for longer drops, and says so.
//
// Records are pruned after Options.Retention, raw bodies Options.KeepBodies
// after the message left the queue.
package inspect

import (
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go

	"github.com/mjrelay/mjrelay/relay/store"
)

// FileName is the store's file name in data_dir.
const FileName = "store.db"

// Path returns the store's path for a data directory.
func Path(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Options configure a Store (store.Options).
type Options = store.Options

// Store is an open traffic store. It is safe for concurrent use.
type Store struct {
	opts Options
	log  *slog.Logger
	path string
	rdb  *sql.DB // readers
	wdb  *sql.DB // the writer's single connection (nil when read-only)

	// Inbox takes Record, RecordMailjet, Flush and Prune, for the
	// writer.
	*store.Inbox

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store at path and starts its writer.
func Open(path string, o Options) (*Store, error) {
	o = o.WithDefaults()
	s := &Store{opts: o, log: o.Logger.With("component", "inspect"), path: path}
	s.Inbox = store.NewInbox(o, s.log)
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("traffic store: %w", err)
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := createPrivate(path); err != nil {
			return nil, fmt.Errorf("traffic store: %w", err)
		}
		w, err := openDB(path, 2, false) // the writer's connection and the checkpointer's
		if err != nil {
			return nil, err
		}
		s.wdb = w
		dropped, err := migrate(w, s.log)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("traffic store %s: %w", path, err)
		}
		if dropped > 0 {
			s.log.Warn("traffic store of another schema version rebuilt empty", "path", path, "records_dropped", dropped)
		}
	}
	r, err := openDB(path, 4, true)
	if err != nil {
		s.closeDBs()
		return nil, err
	}
	s.rdb = r
	if o.ReadOnly {
		var v int
		if err := r.QueryRow(`SELECT v FROM meta WHERE k='schema'`).Scan(&v); err != nil {
			s.closeDBs()
			return nil, fmt.Errorf("traffic store %s: %w", path, err)
		} else if v != schemaVersion {
			s.closeDBs()
			return nil, fmt.Errorf("traffic store %s: schema version %d, this mjrelay reads %d", path, v, schemaVersion)
		}
		return s, nil
	}
	w, err := newWriter(s)
	if err != nil {
		s.closeDBs()
		return nil, err
	}
	go w.run()
	go s.checkpointer()
	return s, nil
}

// createPrivate makes the store's files readable by their owner only: the
// database and its WAL hold message bodies. SQLite creates store.db-wal and
// store.db-shm with the mode of the database file (it fchmods them to it,
// whatever the umask), so the database file is created 0600 before SQLite
// opens it; files left with a wider mode by older versions are narrowed.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkpointer copies the WAL into the database file every second, beside
// the writer (a PASSIVE checkpoint does not block it), until Close.
func (s *Store) checkpointer() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.Quit:
			return
		case <-t.C:
			if _, err := s.wdb.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				s.log.Warn("traffic store checkpoint failed", "err", err)
			}
		}
	}
}

// openDB opens a connection pool with the store's pragmas.
func openDB(path string, conns int, readOnly bool) (*sql.DB, error) {
	// WAL checkpoints are not run by the committing writer (that would
	// stall it): a checkpointer goroutine runs them (see checkpointer).
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=wal_autocheckpoint(0)" +
		"&_pragma=foreign_keys(OFF)&_pragma=cache_size(-32000)&_pragma=temp_store(MEMORY)"
	if readOnly {
		dsn += "&_pragma=query_only(1)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("traffic store %s: %w", path, err)
	}
	return db, nil
}

// Close commits what is buffered and closes the database. Record calls
// after Close are dropped.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.Inbox.Close()
		s.closeErr = s.closeDBs()
	})
	return s.closeErr
}

func (s *Store) closeDBs() error {
	var err error
	if s.rdb != nil {
		err = s.rdb.Close()
	}
	if s.wdb != nil {
		if _, cerr := s.wdb.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); cerr != nil && err == nil {
			err = cerr
		}
		if cerr := s.wdb.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
