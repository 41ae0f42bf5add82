package pgstore

import (
	"context"
	"errors"
	"fmt"
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
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	var cursor int64
	if f.Cursor != "" {
		c, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil {
			return store.Page{}, fmt.Errorf("%w: cursor %q", store.ErrBadFilter, f.Cursor)
		}
		cursor = c
	}
	// The driver is what the scan runs over in key order; with several
	// (a domain searched on both sides), each is a branch of a UNION.
	type driver struct{ from, keyCol, cond string }
	var args []any
	common := query{args: &args}
	addrDriver := func(a string) driver {
		return driver{"store_addrs a JOIN store_messages m ON m.key = a.key", "a.key", "a.a = " + common.arg(a)}
	}
	drivers := []driver{{from: "store_messages m", keyCol: "m.key"}}
	from, to := store.AddrFilter("f:", f.From), store.AddrFilter("t:", f.To)
	search := store.ParseSearch(f.Q)
	switch {
	case search.QueueID != "":
		common.add("m.id = " + common.arg(search.QueueID))
	case search.MailjetID != "":
		id, err := strconv.ParseInt(search.MailjetID, 10, 64)
		if err != nil {
			return store.Page{Messages: []store.Summary{}}, nil // not an id Mailjet gives
		}
		common.add("m.key IN (SELECT key FROM store_rcpts WHERE mj_id = " + common.arg(id) + ")")
	case search.UUID != "":
		common.add("m.key IN (SELECT key FROM store_rcpts WHERE mj_uuid = " + common.arg(search.UUID) + ")")
	case search.Domain != "":
		// A domain: messages from it or to it.
		drivers = []driver{addrDriver(store.DomainKey("f:", search.Domain)), addrDriver(store.DomainKey("t:", search.Domain))}
	}
	match, none := tsquery(search.Words)
	if none {
		return store.Page{Messages: []store.Summary{}}, nil
	}
	switch {
	case len(drivers) > 1:
	case match != "":
		drivers[0] = driver{"store_search s JOIN store_messages m ON m.key = s.key", "s.key", "s.words @@ " + common.arg(match) + "::tsquery"}
	case to != "":
		drivers[0], to = addrDriver(to), ""
	case from != "":
		drivers[0], from = addrDriver(from), ""
	}
	for _, a := range []string{from, to} {
		if a != "" {
			common.add("EXISTS (SELECT 1 FROM store_addrs x WHERE x.a = " + common.arg(a) + " AND x.key = m.key)")
		}
	}
	if states := f.States(); len(states) == 1 {
		common.add("m.state = " + common.arg(states[0]))
	} else if len(states) > 1 {
		common.add("m.state = ANY(" + common.arg(states) + ")")
	}
	if f.Class != "" {
		common.add("m.class = " + common.arg(f.Class))
	}
	switch f.Feedback {
	case "":
	case "any":
		common.add("m.key IN (SELECT key FROM store_feedback WHERE state <> '')")
	default:
		common.add("m.key IN (SELECT key FROM store_feedback WHERE state = " + common.arg(f.Feedback) + ")")
	}
	var keyConds []string
	if f.Cursor != "" {
		keyConds = append(keyConds, " < "+common.arg(cursor))
	}
	if !f.Since.IsZero() {
		keyConds = append(keyConds, " >= "+common.arg(store.KeyAt(f.Since)))
	}
	if !f.Until.IsZero() {
		keyConds = append(keyConds, " < "+common.arg(store.KeyAt(f.Until)))
	}
	lim := common.arg(limit + 1)
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
	rows, err := s.db.Query(ctx, sqlText, args...)
	if err != nil {
		return store.Page{}, err
	}
	defer rows.Close()
	p := store.Page{Messages: []store.Summary{}}
	var last int64 // the key of the last message listed: the next page's cursor
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return store.Page{}, err
		}
		if len(p.Messages) == limit {
			p.Next = strconv.FormatInt(last, 10)
			break
		}
		p.Messages = append(p.Messages, r.Summary())
		last = r.Key
	}
	return p, rows.Err()
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
	for rows.Next() {
		var k store.StatKey
		var v store.StatVal
		if err := rows.Scan(&k.Minute, &k.Kind, &k.Class, &k.Reason, &v.N, &v.LatSum, &v.LatMax); err != nil {
			return nil, err
		}
		b.Add(k, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return b.Stats(), nil
}
