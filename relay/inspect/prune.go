package inspect

import (
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

// pruneChunk is how many messages one pruning transaction removes; the
// writer applies waiting events between chunks.
const pruneChunk = 2000

// prune removes records past the retention (messages still queued are
// kept up to twice the retention), raw bodies KeepBodies after the message
// left the queue, and old per-minute statistics.
func (w *writer) prune(now time.Time) {
	cut := store.KeyAt(now.Add(-w.s.opts.Retention))
	hardCut := store.KeyAt(now.Add(-2 * w.s.opts.Retention))
	removed := 0
	for {
		n, err := w.pruneMessages(cut, hardCut)
		if err != nil {
			w.logErr("pruning the traffic store failed", err)
			return
		}
		removed += n
		if n < pruneChunk {
			break
		}
		if len(w.s.C) > 0 {
			w.process(w.s.Collect(nil, maxBatch), false)
		}
	}
	bodyCut := now.Add(-w.s.opts.KeepBodies).UnixMilli()
	var bodies int64
	for {
		var n int64
		err := w.tx(func() error {
			res, err := w.conn.ExecContext(w.ctx, `DELETE FROM bodies WHERE key IN
				(SELECT key FROM bodies WHERE final_at IS NOT NULL AND final_at < ? LIMIT ?)`, bodyCut, pruneChunk)
			if err == nil {
				n, err = res.RowsAffected()
			}
			return err
		})
		if err != nil {
			w.logErr("pruning raw messages failed", err)
			return
		}
		bodies += n
		if n < pruneChunk {
			break
		}
	}
	if err := w.tx(func() error {
		_, err := w.conn.ExecContext(w.ctx, `DELETE FROM stats WHERE minute < ?`, now.Add(-w.s.opts.Retention).Unix()/60)
		return err
	}); err != nil {
		w.logErr("pruning statistics failed", err)
	}
	if removed > 0 || bodies > 0 {
		// Give the freed pages back to the file system.
		w.conn.ExecContext(w.ctx, `PRAGMA incremental_vacuum`)
		w.s.log.Info("traffic store pruned", "messages", removed, "raw_messages", bodies)
	}
}

// pruneMessages deletes up to pruneChunk messages older than cut (hardCut
// for those still queued) and everything attached to them.
func (w *writer) pruneMessages(cut, hardCut int64) (int, error) {
	rows, err := w.conn.QueryContext(w.ctx, `SELECT `+rowColumns+` FROM messages WHERE key < ?
		AND (state NOT IN ('queued', 'deferred') OR key < ?) ORDER BY key LIMIT ?`, cut, hardCut, pruneChunk)
	if err != nil {
		return 0, err
	}
	var old []*row
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		old = append(old, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(old) == 0 {
		return 0, err
	}
	w.cache.reset()
	err = w.tx(func() error {
		for _, r := range old {
			for _, a := range r.AddrKeys() {
				if _, err := w.conn.ExecContext(w.ctx, `DELETE FROM addrs WHERE a = ? AND key = ?`, a, r.Key); err != nil {
					return err
				}
			}
			for _, q := range []string{`DELETE FROM fts WHERE rowid = ?`, `DELETE FROM events WHERE key = ?`,
				`DELETE FROM rcpts WHERE key = ?`, `DELETE FROM bodies WHERE key = ?`, `DELETE FROM feedback WHERE key = ?`,
				`DELETE FROM messages WHERE key = ?`} {
				if _, err := w.conn.ExecContext(w.ctx, q, r.Key); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return len(old), err
}
