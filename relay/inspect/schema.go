package inspect

import (
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// schemaVersion changes whenever the tables below change, with a
// migration from the version before (migrations); a store of a version
// with no migration path (from a newer mjrelay) is rebuilt empty.
const schemaVersion = 2

// Layout notes.
//
//   - messages.key is the primary key and encodes the receive time:
//     unix milliseconds × 1e6 + a sequence number. Ordering by key is
//     ordering by time, a time range is a key range, and every secondary
//     index (which SQLite suffixes with the key) is time-ordered too, so
//     "the latest 50 with state X" is an index range scan, never a sort.
//   - addrs holds one row per address and domain of a message, prefixed by
//     kind ("f:" from, "t:" to, "F:"/"T:" their domains, "u:" the ids the
//     upstream gave it), keyed (a, key) so that "messages to x@y, newest
//     first" is one range scan.
//   - messages.why is the reason label of a message in a problem state
//     (store.Summary.Why), indexed so that "the latest with this reason"
//     is a range scan too.
//   - fts is a contentless FTS5 index (subject, addresses, ids) whose rowid
//     is the message key. '.', '@', '-', '_' and '+' are part of words, so
//     that an address is one token (searching "john" finds
//     john.doe@example.com by prefix, and "example" does not match every
//     address: domains are searched through addrs instead).
//   - events and rcpts are clustered by message key (WITHOUT ROWID), so a
//     message's timeline is one range scan.
//   - stats are per-minute counters maintained by the writer for the
//     dashboard and the funnel (the rcpt_* kinds count recipients), so
//     that charts never scan messages.
var schema = []string{
	`CREATE TABLE meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID`,
	`CREATE TABLE messages (
		key         INTEGER PRIMARY KEY,
		id          TEXT NOT NULL UNIQUE,
		received_at INTEGER NOT NULL,
		updated_at  INTEGER NOT NULL,
		final_at    INTEGER,
		state       TEXT NOT NULL,
		class       TEXT NOT NULL DEFAULT '',
		class_rule  TEXT NOT NULL DEFAULT '',
		mail_from   TEXT NOT NULL DEFAULT '',
		rcpt_to     TEXT NOT NULL DEFAULT '',
		header_from TEXT NOT NULL DEFAULT '',
		subject     TEXT NOT NULL DEFAULT '',
		message_id  TEXT NOT NULL DEFAULT '',
		size        INTEGER NOT NULL DEFAULT 0,
		user        TEXT NOT NULL DEFAULT '',
		client      TEXT NOT NULL DEFAULT '',
		helo        TEXT NOT NULL DEFAULT '',
		tls         INTEGER NOT NULL DEFAULT 0,
		verdict     TEXT NOT NULL DEFAULT '',
		reason      TEXT NOT NULL DEFAULT '',
		stage       TEXT NOT NULL DEFAULT '',
		reply       TEXT NOT NULL DEFAULT '',
		transport   TEXT NOT NULL DEFAULT '',
		upstream    TEXT NOT NULL DEFAULT '',
		attempts    INTEGER NOT NULL DEFAULT 0,
		mailjet_ids TEXT NOT NULL DEFAULT '',
		latency_ms  REAL,
		why          TEXT NOT NULL DEFAULT '',
		upstream_ids TEXT NOT NULL DEFAULT '',
		attachments  INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX messages_state ON messages(state)`,
	`CREATE INDEX messages_why ON messages(why)`,
	`CREATE INDEX messages_class ON messages(class)`,
	`CREATE TABLE addrs (a TEXT NOT NULL, key INTEGER NOT NULL, PRIMARY KEY (a, key)) WITHOUT ROWID`,
	`CREATE TABLE rcpts (
		key        INTEGER NOT NULL,
		rcpt       TEXT NOT NULL,
		state      TEXT NOT NULL,
		reply      TEXT NOT NULL DEFAULT '',
		mj_id      INTEGER,
		mj_uuid    TEXT,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (key, rcpt)
	) WITHOUT ROWID`,
	`CREATE INDEX rcpts_mj_id ON rcpts(mj_id) WHERE mj_id IS NOT NULL`,
	`CREATE INDEX rcpts_mj_uuid ON rcpts(mj_uuid) WHERE mj_uuid IS NOT NULL`,
	`CREATE TABLE events (
		key  INTEGER NOT NULL,
		seq  INTEGER NOT NULL,
		at   INTEGER NOT NULL,
		kind TEXT NOT NULL,
		data TEXT NOT NULL,
		PRIMARY KEY (key, seq)
	) WITHOUT ROWID`,
	`CREATE TABLE bodies (key INTEGER PRIMARY KEY, final_at INTEGER, size INTEGER NOT NULL, data BLOB NOT NULL)`,
	`CREATE INDEX bodies_final ON bodies(final_at) WHERE final_at IS NOT NULL`,
	`CREATE TABLE stats (
		minute  INTEGER NOT NULL,
		kind    TEXT NOT NULL,
		class   TEXT NOT NULL,
		reason  TEXT NOT NULL,
		n       INTEGER NOT NULL,
		lat_sum REAL NOT NULL DEFAULT 0,
		lat_max REAL NOT NULL DEFAULT 0,
		PRIMARY KEY (minute, kind, class, reason)
	) WITHOUT ROWID`,
	`CREATE VIRTUAL TABLE fts USING fts5(subject, addrs, ids, content='', contentless_delete=1,
		tokenize="unicode61 remove_diacritics 2 tokenchars '.@-_+'")`,
}

var tables = []string{"meta", "messages", "addrs", "rcpts", "events", "bodies", "stats", "fts", "feedback"}

// migrate creates the schema, brings a store of an older version to this
// one (each step in a transaction: a failed migration leaves the store as
// it was), or rebuilds it when it is of a version it cannot migrate from
// (dropped tells the caller to log it).
func migrate(db *sql.DB, log *slog.Logger) (dropped int, err error) {
	var v int
	err = db.QueryRow(`SELECT v FROM meta WHERE k='schema'`).Scan(&v)
	if err == nil && v == schemaVersion {
		return 0, addTables(db)
	}
	if err == nil && v < schemaVersion && migrations[v] != nil {
		start := time.Now()
		log.Info("traffic store: migrating to this version's schema, once; its records are kept (a large store takes a minute)",
			"from", v, "to", schemaVersion)
		defer func() {
			if err == nil {
				log.Info("traffic store migrated", "took", time.Since(start).Round(time.Millisecond))
			}
		}()
		for ; v < schemaVersion; v++ {
			if err := migrateStep(db, v); err != nil {
				return 0, fmt.Errorf("migrating from schema version %d: %w", v, err)
			}
		}
		return 0, addTables(db)
	}
	if err == nil {
		dropped = v
		if err := db.QueryRow(`SELECT count(*) FROM messages`).Scan(&v); err == nil {
			dropped = v
		}
		// Another version: its records are dropped (logged by the caller).
		for _, t := range tables {
			if _, err := db.Exec(`DROP TABLE IF EXISTS ` + t); err != nil {
				return 0, err
			}
		}
		if _, err := db.Exec(`VACUUM`); err != nil {
			return 0, err
		}
	}
	// auto_vacuum must be set before the first table exists.
	if _, err := db.Exec(`PRAGMA auto_vacuum=INCREMENTAL`); err != nil {
		return 0, err
	}
	tx, err := db.Begin()
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	for _, q := range schema {
		if _, err := tx.Exec(q); err != nil {
			return 0, fmt.Errorf("%w in %.40s", err, q)
		}
	}
	if _, err := tx.Exec(`INSERT INTO meta (k, v) VALUES ('schema', ?)`, schemaVersion); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return dropped, addTables(db)
}

// migrateStep runs migrations[v] in a transaction.
func migrateStep(db *sql.DB, v int) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := migrations[v](tx); err != nil {
		return err
	}
	if _, err := tx.Exec(`UPDATE meta SET v = ? WHERE k = 'schema'`, v+1); err != nil {
		return err
	}
	return tx.Commit()
}
