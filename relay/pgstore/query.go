package pgstore

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/relay/store"
)

// query builds a statement's conditions and arguments.
type query struct {
	where []string
	args  *[]any
}

// arg adds an argument and returns its placeholder.
func (q *query) arg(v any) string {
	*q.args = append(*q.args, v)
	return "$" + strconv.Itoa(len(*q.args))
}

func (q *query) add(cond string) { q.where = append(q.where, cond) }

// List returns one page of messages matching f, newest first.
func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	p, err := store.PlanList(f)
	if err != nil {
		return store.Page{}, err
	}
	none := store.Page{Messages: []store.Summary{}}
	var args []any
	common := query{args: &args}
	// The driver is what the scan runs over in key order; with several,
	// each is a branch of a UNION.
	type driver struct{ from, keyCol, cond string }
	var drivers []driver
	inKeyOrder := false // a scan must run in key order: the planner is told
	for _, sc := range p.Scans {
		switch {
		case sc.Addr != "":
			drivers = append(drivers, driver{"store_addrs a JOIN store_messages m ON m.key = a.key", "a.key", "a.a = " + common.arg(sc.Addr)})
		case len(sc.Words) > 0:
			match, nothing := tsquery(sc.Words)
			if nothing {
				return none, nil
			}
			keys, all, err := s.matching(ctx, match)
			switch {
			case err != nil:
				return store.Page{}, err
			case all:
				// Few messages match: those.
				drivers = append(drivers, driver{"store_messages m", "m.key", "m.key = ANY(" + common.arg(keys) + ")"})
			default:
				// Many do: the newest of them come soon in key order.
				drivers = append(drivers, driver{"store_search s JOIN store_messages m ON m.key = s.key", "s.key",
					"s.words @@ " + common.arg(match) + "::tsquery"})
				inKeyOrder = true
			}
		case sc.QueueID != "":
			drivers = append(drivers, driver{"store_messages m", "m.key", "m.id = " + common.arg(sc.QueueID)})
		case sc.MailjetID != "":
			// An id Mailjet never gives (past int64) finds nothing.
			id, _ := strconv.ParseInt(sc.MailjetID, 10, 64)
			drivers = append(drivers, driver{"store_messages m", "m.key",
				"m.key IN (SELECT key FROM store_rcpts WHERE mj_id = " + common.arg(id) + ")"})
		case sc.UUID != "":
			drivers = append(drivers, driver{"store_messages m", "m.key",
				"m.key IN (SELECT key FROM store_rcpts WHERE mj_uuid = " + common.arg(sc.UUID) + ")"})
		default:
			drivers = append(drivers, driver{from: "store_messages m", keyCol: "m.key"})
		}
	}
	for _, a := range p.Addrs {
		common.add("EXISTS (SELECT 1 FROM store_addrs x WHERE x.a = " + common.arg(a) + " AND x.key = m.key)")
	}
	if len(p.States) == 1 {
		common.add("m.state = " + common.arg(p.States[0]))
	} else if len(p.States) > 1 {
		common.add("m.state = ANY(" + common.arg(p.States) + ")")
	}
	if p.Class != "" {
		common.add("m.class = " + common.arg(p.Class))
	}
	if p.Reason != "" {
		common.add("m.why = " + common.arg(p.Reason))
	}
	switch p.Feedback {
	case "":
	case "any":
		common.add("m.key IN (SELECT key FROM store_feedback WHERE state <> '')")
	default:
		common.add("m.key IN (SELECT key FROM store_feedback WHERE state = " + common.arg(p.Feedback) + ")")
	}
	var keyConds []string
	for _, b := range []struct {
		op  string
		key int64
	}{{" < ", p.Below}, {" >= ", p.AtLeast}, {" < ", p.Under}} {
		if b.key != 0 {
			keyConds = append(keyConds, b.op+common.arg(b.key))
		}
	}
	lim := common.arg(p.Limit + 1)
	var branches []string
	for _, d := range drivers {
		where := append([]string{"true"}, common.where...)
		if d.cond != "" {
			where = append(where, d.cond)
		}
		for _, c := range keyConds {
			where = append(where, d.keyCol+c)
		}
		branches = append(branches, "SELECT "+rowColumns+" FROM "+d.from+" WHERE "+strings.Join(where, " AND ")+
			" ORDER BY "+d.keyCol+" DESC LIMIT "+lim)
	}
	sqlText := branches[0]
	if len(branches) > 1 {
		sqlText = "(" + strings.Join(branches, ") UNION (") + ") ORDER BY 1 DESC LIMIT " + lim
	}
	var db interface {
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	} = s.db
	if inKeyOrder {
		// Without it, PostgreSQL may take every match from the full-text
		// index and sort them, not knowing how many there are.
		tx, err := s.db.Begin(ctx)
		if err != nil {
			return store.Page{}, err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT set_config('enable_bitmapscan', 'off', true)`); err != nil {
			return store.Page{}, err
		}
		db = tx
	}
	rows, err := db.Query(ctx, sqlText, args...)
	if err != nil {
		return store.Page{}, err
	}
	defer rows.Close()
	return store.ReadPage(rows, p.Limit, func(rows store.Rows) (*store.Row, error) { return scanRow(rows) })
}

// fewWords is how many messages a search's words may match for List to
// take them from the full-text index rather than scan in key order.
const fewWords = 2000

// matching returns the keys of the messages whose words match, when they
// are fewer than fewWords (all). The full-text index cannot give them in
// key order: for words that match few messages, List takes them all from
// it; for words that match many, it scans in key order, where the newest
// matching come soon. PostgreSQL cannot tell which from its statistics
// (a prefix, a word it has never counted), so this asks the index.
func (s *Store) matching(ctx context.Context, match string) (keys []int64, all bool, err error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback(ctx)
	var q pgx.Batch
	q.Queue(`SELECT set_config('enable_seqscan', 'off', true), set_config('enable_indexscan', 'off', true),
		set_config('enable_indexonlyscan', 'off', true)`)
	q.Queue(`SELECT key FROM store_search WHERE words @@ $1::tsquery LIMIT $2`, match, s.fewWords).Query(func(rows pgx.Rows) error {
		var key int64
		_, err := pgx.ForEachRow(rows, []any{&key}, func() error { keys = append(keys, key); return nil })
		return err
	})
	if err := tx.SendBatch(ctx, &q).Close(); err != nil {
		return nil, false, err
	}
	return keys, len(keys) < s.fewWords, nil
}

// Get returns a message with its timeline.
func (s *Store) Get(ctx context.Context, id string) (*store.Message, error) {
	r, err := scanRow(s.db.QueryRow(ctx, `SELECT `+rowColumns+` FROM store_messages m WHERE m.id = $1`, clean(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var events []store.StoredEvent
	var size int64
	var feedback, unsubscribe string
	hasRaw := false
	var q pgx.Batch
	q.Queue(`SELECT state, unsubscribe FROM store_feedback WHERE key = $1`, r.Key).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&feedback, &unsubscribe); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	q.Queue(`SELECT rcpt, state, reply, coalesce(mj_id, 0), coalesce(mj_uuid, '') FROM store_rcpts WHERE key = $1 ORDER BY rcpt`,
		r.Key).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			rc := &store.Rcpt{}
			var state string
			if err := rows.Scan(&rc.Addr, &state, &rc.Reply, &rc.MailjetID, &rc.MailjetUUID); err != nil {
				return err
			}
			rc.State = store.State(state)
			r.Rcpts = append(r.Rcpts, rc)
		}
		return rows.Err()
	})
	q.Queue(`SELECT size FROM store_bodies WHERE key = $1`, r.Key).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			hasRaw = true
			if err := rows.Scan(&size); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	q.Queue(`SELECT at, kind, data FROM store_events WHERE key = $1 ORDER BY at, seq`, r.Key).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var at int64
			var ev store.StoredEvent
			var data string
			if err := rows.Scan(&at, &ev.Kind, &data); err != nil {
				return err
			}
			ev.At, ev.Data = time.UnixMilli(at), []byte(data)
			events = append(events, ev)
		}
		return rows.Err()
	})
	if err := s.db.SendBatch(ctx, &q).Close(); err != nil {
		return nil, err
	}
	m := r.Message(events)
	m.HasRaw, m.RawSize, m.Feedback, m.Unsubscribe = hasRaw, size, feedback, unsubscribe
	return m, nil
}

// Raw returns the stored raw message of id (ErrNotFound when there is none:
// bodies are not kept, or already pruned).
func (s *Store) Raw(ctx context.Context, id string) (io.Reader, int64, error) {
	var data []byte
	var size int64
	err := s.db.QueryRow(ctx, `SELECT b.data, b.size FROM store_bodies b JOIN store_messages m ON m.key = b.key
		WHERE m.id = $1`, clean(id)).Scan(&data, &size)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, store.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	return store.Inflate(data), size, nil
}

// Funnel returns the delivery funnel by day and lane, from the per-minute
// counters (store.FunnelBuilder) of every node.
func (s *Store) Funnel(ctx context.Context, since, until time.Time, loc *time.Location) (*store.Funnel, error) {
	b := store.NewFunnelBuilder(since, until, loc)
	rows, err := s.db.Query(ctx, `SELECT minute / 15, kind, class, sum(n)::bigint FROM store_stats
		WHERE minute >= $1 AND minute < $2 AND kind = ANY($3) GROUP BY 1, 2, 3`, b.FromMin, b.UntilMin, b.Kinds)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if err := b.AddRows(rows); err != nil {
		return nil, err
	}
	return b.Funnel(), nil
}

// Stats returns the counters of [since, until) in buckets of step (at least
// a minute; at most 1440 buckets), from the per-minute counters of every
// node (and of the migrated stores).
func (s *Store) Stats(ctx context.Context, since, until time.Time, step time.Duration) (*store.Stats, error) {
	b := store.NewStatsBuilder(since, until, step)
	rows, err := s.db.Query(ctx, `SELECT minute, kind, class, reason, sum(n)::bigint, sum(lat_sum), max(lat_max)
		FROM store_stats WHERE minute >= $1 AND minute < $2 GROUP BY 1, 2, 3, 4`, b.FromMin, b.UntilMin)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if err := b.AddRows(rows); err != nil {
		return nil, err
	}
	return b.Stats(), nil
}
