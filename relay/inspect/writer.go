package inspect

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

// maxBatch bounds one transaction, so that a backlog is committed in
// pieces and readers see progress.
const maxBatch = 8192

// writer owns the write connection; only its goroutine touches it.
type writer struct {
	s    *Store
	ctx  context.Context
	conn *sql.Conn
	st   map[string]*sql.Stmt

	lastKey int64
	seq     int64
	// dataVersion is the database's data_version this writer last saw: it
	// changes when another connection commits (another relay process,
	// for the moment a restart hands over).
	dataVersion int64
	stats       store.StatCounts
	cache       rowCache
	dirty       map[int64]*row // rows to write at the end of the batch

	lastErrLog time.Time
	unjoined   uint64
}

// statements are prepared once on the writer's connection.
var statements = map[string]string{
	"byID":      `SELECT ` + rowColumns + ` FROM messages WHERE id = ?`,
	"byKey":     `SELECT ` + rowColumns + ` FROM messages WHERE key = ?`,
	"insertMsg": `INSERT INTO messages (` + rowColumns + `) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
	"updateMsg": `UPDATE messages SET received_at=?, updated_at=?, final_at=?, state=?, class=?, class_rule=?,
		mail_from=?, rcpt_to=?, header_from=?, subject=?, message_id=?, size=?, user=?, client=?, helo=?, tls=?,
		verdict=?, reason=?, stage=?, reply=?, transport=?, upstream=?, attempts=?, mailjet_ids=?, latency_ms=?,
		why=?, upstream_ids=?, attachments=? WHERE key=?`,
	"updateState": `UPDATE messages SET updated_at=?, final_at=?, state=?, reason=?, reply=?, transport=?, upstream=?,
		attempts=?, mailjet_ids=?, latency_ms=?, why=?, upstream_ids=? WHERE key=?`,
	"insertAddr":     `INSERT OR IGNORE INTO addrs (a, key) VALUES (?, ?)`,
	"insertFTS":      `INSERT INTO fts (rowid, subject, addrs, ids) VALUES (?, ?, ?, ?)`,
	"deleteFTS":      `DELETE FROM fts WHERE rowid = ?`,
	"rcpts":          `SELECT rcpt, state, reply, coalesce(mj_id, 0), coalesce(mj_uuid, '') FROM rcpts WHERE key = ?`,
	"putRcpt":        `INSERT OR REPLACE INTO rcpts (key, rcpt, state, reply, mj_id, mj_uuid, updated_at) VALUES (?,?,?,?,?,?,?)`,
	"byMJID":         `SELECT key FROM rcpts WHERE mj_id = ? LIMIT 1`,
	"byMJUUID":       `SELECT key FROM rcpts WHERE mj_uuid = ? LIMIT 1`,
	"insertEvent":    `INSERT INTO events (key, seq, at, kind, data) VALUES (?,?,?,?,?)`,
	"putBody":        `INSERT OR REPLACE INTO bodies (key, final_at, size, data) VALUES (?,?,?,?)`,
	"finalBody":      `UPDATE bodies SET final_at = ? WHERE key = ? AND final_at IS NULL`,
	"feedbackURL":    feedbackURL,
	"feedbackCounts": feedbackCounts,
	"feedbackNote":   feedbackNote,
	"stat": `INSERT INTO stats (minute, kind, class, reason, n, lat_sum, lat_max) VALUES (?,?,?,?,?,?,?)
		ON CONFLICT DO UPDATE SET n = n + excluded.n, lat_sum = lat_sum + excluded.lat_sum, lat_max = max(lat_max, excluded.lat_max)`,
}

func newWriter(s *Store) (*writer, error) {
	ctx := context.Background()
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	w := &writer{s: s, ctx: ctx, conn: conn, st: map[string]*sql.Stmt{}, stats: store.StatCounts{},
		dirty: map[int64]*row{}}
	for name, q := range statements {
		st, err := conn.PrepareContext(ctx, q)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("preparing %s: %w", name, err)
		}
		w.st[name] = st
	}
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(key), 0) FROM messages`).Scan(&w.lastKey); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&w.dataVersion); err != nil {
		conn.Close()
		return nil, err
	}
	w.seq = time.Now().UnixNano()
	return w, nil
}

func (w *writer) run() {
	defer close(w.s.Done)
	defer func() {
		for _, st := range w.st {
			st.Close()
		}
		w.conn.Close()
	}()
	prune := time.NewTimer(time.Minute)
	defer prune.Stop()
	batch := make([]*store.Entry, 0, maxBatch)
	for {
		select {
		case en := <-w.s.C:
			batch = w.s.Gather(append(batch[:0], en), maxBatch, gatherFor)
			w.process(batch, true)
		case <-prune.C:
			w.prune(w.s.opts.Now())
			prune.Reset(w.s.opts.PruneEvery)
		case <-w.s.Quit:
			for {
				batch = w.s.Collect(batch[:0], maxBatch)
				if len(batch) == 0 {
					return
				}
				w.process(batch, false)
			}
		}
	}
}

// process commits a batch and answers its Prune requests (pruning once if
// allowed).
func (w *writer) process(batch []*store.Entry, allowPrune bool) {
	w.s.InFlight.Store(int64(len(batch)))
	w.commit(batch)
	pruned := false
	for _, en := range batch {
		if en.Prune {
			if allowPrune && !pruned {
				w.prune(w.s.opts.Now())
				pruned = true
			}
			close(en.Flush)
		}
	}
}

// gatherFor is how long the writer lets a batch fill after its first
// event. The store observes; a tenth of a second behind costs nobody
// anything, and big transactions cost a fraction of many small ones, so
// under load the writer takes little CPU from the relay itself.
const gatherFor = 100 * time.Millisecond

// commit applies a batch in one transaction.
func (w *writer) commit(batch []*store.Entry) {
	w.s.Deflate(batch)
	err := w.tx(func() error {
		for _, en := range batch {
			if en.Flush != nil {
				continue
			}
			var err error
			if en.MJ != nil {
				err = w.applyMailjet(en.MJ)
			} else {
				err = w.apply(en)
			}
			if err != nil {
				w.logErr("cannot record an event in the traffic store", err, "event", en.Ev.Event, "id", en.Ev.ID)
			}
		}
		if err := w.flushRows(); err != nil {
			return err
		}
		return w.flushStats()
	})
	if err != nil {
		w.s.WriteError()
		w.logErr("traffic store commit failed: these events are missing from the inspection record", err, "events", len(batch))
	}
	w.s.Release(batch)
	for _, en := range batch {
		if en.Flush != nil && !en.Prune {
			close(en.Flush)
		}
	}
}

func (w *writer) tx(fn func() error) error {
	if _, err := w.conn.ExecContext(w.ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	err := w.catchUp()
	if err == nil {
		err = fn()
	}
	if err == nil {
		_, err = w.conn.ExecContext(w.ctx, `COMMIT`)
	}
	if err != nil {
		// The cached rows may hold what was rolled back.
		w.conn.ExecContext(w.ctx, `ROLLBACK`)
		w.cache.reset()
		clear(w.stats)
		clear(w.dirty)
	}
	return err
}

// catchUp, in a write transaction, forgets what this writer keeps in
// memory if another connection wrote meanwhile: for a moment during a
// restart, two relay processes record into the store; each then reads
// again the rows it had cached, and makes new message keys after the
// other's.
func (w *writer) catchUp() error {
	var v, maxKey int64
	if err := w.conn.QueryRowContext(w.ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return err
	}
	if v == w.dataVersion {
		return nil
	}
	if err := w.conn.QueryRowContext(w.ctx, `SELECT coalesce(max(key), 0) FROM messages`).Scan(&maxKey); err != nil {
		return err
	}
	w.cache.reset()
	w.lastKey, w.dataVersion = max(w.lastKey, maxKey), v
	return nil
}

func (w *writer) logErr(msg string, err error, args ...any) {
	now := time.Now()
	if now.Sub(w.lastErrLog) < 10*time.Second {
		return
	}
	w.lastErrLog = now
	w.s.log.Error(msg, append(args, "err", err)...)
}

func (w *writer) flushStats() error {
	for k, v := range w.stats {
		if _, err := w.st["stat"].ExecContext(w.ctx, k.Minute, k.Kind, k.Class, k.Reason, v.N, v.LatSum, v.LatMax); err != nil {
			return err
		}
	}
	clear(w.stats)
	return nil
}

// newKey returns a fresh message key for a message received at ms.
func (w *writer) newKey(ms int64) int64 {
	k := ms * store.KeyPerMS
	if k <= w.lastKey {
		k = w.lastKey + 1
	}
	w.lastKey = k
	return k
}
