package inspect

import (
	"context"
	"database/sql"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

// Export hands the stored messages to fn, oldest first, n at a time, each
// with its recipients, timeline and raw body: what a migration copies
// into another store.
func (s *Store) Export(ctx context.Context, n int, fn func([]store.Dump) error) error {
	var after int64 = -1
	for {
		ds, err := s.exportFrom(ctx, after, n)
		if err != nil || len(ds) == 0 {
			return err
		}
		if err := fn(ds); err != nil {
			return err
		}
		after = ds[len(ds)-1].Row.Key
	}
}

// exportFrom reads up to n messages with a key above after.
func (s *Store) exportFrom(ctx context.Context, after int64, n int) ([]store.Dump, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+rowColumns+` FROM messages WHERE key > ? ORDER BY key LIMIT ?`, after, n)
	if err != nil {
		return nil, err
	}
	var ds []store.Dump
	byKey := map[int64]*store.Dump{}
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		ds = append(ds, store.Dump{Row: r.Row})
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ds) == 0 {
		return nil, err
	}
	for i := range ds {
		byKey[ds[i].Row.Key] = &ds[i]
	}
	lo, hi := ds[0].Row.Key, ds[len(ds)-1].Row.Key
	each := func(q string, scan func(*sql.Rows) error) error {
		rows, err := s.rdb.QueryContext(ctx, q, lo, hi)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	err = each(`SELECT key, rcpt, state, reply, coalesce(mj_id, 0), coalesce(mj_uuid, '') FROM rcpts
		WHERE key BETWEEN ? AND ? ORDER BY key, rcpt`, func(rows *sql.Rows) error {
		var key int64
		rc := &store.Rcpt{}
		if err := rows.Scan(&key, &rc.Addr, &rc.State, &rc.Reply, &rc.MailjetID, &rc.MailjetUUID); err != nil {
			return err
		}
		if d := byKey[key]; d != nil {
			d.Row.Rcpts = append(d.Row.Rcpts, rc)
		}
		return nil
	})
	if err == nil {
		err = each(`SELECT key, at, kind, data FROM events WHERE key BETWEEN ? AND ? ORDER BY key, seq`, func(rows *sql.Rows) error {
			var key, at int64
			var ev store.StoredEvent
			if err := rows.Scan(&key, &at, &ev.Kind, &ev.Data); err != nil {
				return err
			}
			ev.At = time.UnixMilli(at)
			if d := byKey[key]; d != nil {
				d.Events = append(d.Events, ev)
			}
			return nil
		})
	}
	if err == nil {
		err = each(`SELECT key, coalesce(final_at, 0), size, data FROM bodies WHERE key BETWEEN ? AND ?`, func(rows *sql.Rows) error {
			var key, final, size int64
			var data []byte
			if err := rows.Scan(&key, &final, &size, &data); err != nil {
				return err
			}
			if d := byKey[key]; d != nil {
				d.Body, d.BodySize, d.BodyFinal = data, size, final
			}
			return nil
		})
	}
	if err == nil {
		err = each(`SELECT key, unsubscribe, pending, reported, failed, alerts FROM feedback WHERE key BETWEEN ? AND ?`, func(rows *sql.Rows) error {
			var key int64
			var url string
			var c store.FeedbackCounts
			if err := rows.Scan(&key, &url, &c.Pending, &c.Reported, &c.Failed, &c.Alerts); err != nil {
				return err
			}
			if d := byKey[key]; d != nil {
				d.Unsubscribe, d.Feedback = url, c
			}
			return nil
		})
	}
	return ds, err
}

// ExportStats returns the per-minute counters.
func (s *Store) ExportStats(ctx context.Context) (store.StatCounts, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT minute, kind, class, reason, n, lat_sum, lat_max FROM stats`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	c := store.StatCounts{}
	for rows.Next() {
		var k store.StatKey
		v := &store.StatVal{}
		if err := rows.Scan(&k.Minute, &k.Kind, &k.Class, &k.Reason, &v.N, &v.LatSum, &v.LatMax); err != nil {
			return nil, err
		}
		c[k] = v
	}
	return c, rows.Err()
}
