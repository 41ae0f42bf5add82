package inspect

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mjrelay/mjrelay/relay/store"
)

// query collects the conditions of a SELECT being built.
type query struct {
	where []string
	args  []any
}

func (q *query) add(cond string, args ...any) {
	q.where = append(q.where, cond)
	q.args = append(q.args, args...)
}

// List returns one page of messages matching f, newest first.
func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	// The driver is what the scan runs over in key order; with several
	// (a domain searched on both sides), each is a branch of a UNION.
	type driver struct {
		from, keyCol, cond string
		arg                any
	}
	drivers := []driver{{from: "messages m", keyCol: "m.key"}}
	var common query
	from, to := store.AddrFilter("f:", f.From), store.AddrFilter("t:", f.To)
	addrDriver := func(a string) driver {
		return driver{"addrs a JOIN messages m ON m.key = a.key", "a.key", "a.a = ?", a}
	}
	search := store.ParseSearch(f.Q)
	switch {
	case search.QueueID != "":
		common.add("m.id = ?", search.QueueID)
	case search.MailjetID != "":
		common.add("m.key IN (SELECT key FROM rcpts WHERE mj_id = ?)", search.MailjetID)
	case search.UUID != "":
		common.add("m.key IN (SELECT key FROM rcpts WHERE mj_uuid = ?)", search.UUID)
	case search.Domain != "":
		// A domain: messages from it or to it.
		drivers = []driver{addrDriver(store.DomainKey("f:", search.Domain)), addrDriver(store.DomainKey("t:", search.Domain))}
	}
	match := ftsQuery(search.Words)
	switch {
	case len(drivers) > 1:
	case match != "":
		drivers[0] = driver{"fts JOIN messages m ON m.key = fts.rowid", "fts.rowid", "fts MATCH ?", match}
	case to != "":
		drivers[0], to = addrDriver(to), ""
	case from != "":
		drivers[0], from = addrDriver(from), ""
	}
	for _, a := range []string{from, to} {
		if a != "" {
			common.add("EXISTS (SELECT 1 FROM addrs x WHERE x.a = ? AND x.key = m.key)", a)
		}
	}
	var keyConds []string
	var keyArgs []any
	if f.Cursor != "" {
		c, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil {
			return store.Page{}, fmt.Errorf("%w: cursor %q", store.ErrBadFilter, f.Cursor)
		}
		keyConds, keyArgs = append(keyConds, " < ?"), append(keyArgs, c)
	}
	if !f.Since.IsZero() {
		keyConds, keyArgs = append(keyConds, " >= ?"), append(keyArgs, store.KeyAt(f.Since))
	}
	if !f.Until.IsZero() {
		keyConds, keyArgs = append(keyConds, " < ?"), append(keyArgs, store.KeyAt(f.Until))
	}
	if states := f.States(); len(states) == 1 {
		common.add("m.state = ?", states[0])
	} else if len(states) > 1 {
		common.add("m.state IN ("+strings.TrimSuffix(strings.Repeat("?,", len(states)), ",")+")", anys(states)...)
	}
	if f.Class != "" {
		common.add("m.class = ?", f.Class)
	}
	feedbackFilter(&common, f.Feedback)
	var branches []string
	var args []any
	for _, d := range drivers {
		var q query
		if d.cond != "" {
			q.add(d.cond, d.arg)
		}
		for i, c := range keyConds {
			q.add(d.keyCol+c, keyArgs[i])
		}
		q.add(strings.Join(append([]string{"1"}, common.where...), " AND "), common.args...)
		branches = append(branches, "SELECT "+prefixed("m.", rowColumns)+" FROM "+d.from+" WHERE "+
			strings.Join(q.where, " AND ")+" ORDER BY "+d.keyCol+" DESC LIMIT ?")
		args = append(append(args, q.args...), limit+1)
	}
	sqlText := branches[0]
	if len(branches) > 1 {
		for i, b := range branches {
			branches[i] = "SELECT * FROM (" + b + ")"
		}
		sqlText = strings.Join(branches, " UNION ") + " ORDER BY 1 DESC LIMIT ?"
		args = append(args, limit+1)
	}
	rows, err := s.rdb.QueryContext(ctx, sqlText, args...)
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

// ftsQuery turns a search's words into an FTS5 query: every word must
// match, as a prefix when it says so; quotes keep FTS5's syntax out of the
// user's hands.
func ftsQuery(words []store.Word) string {
	var terms []string
	for _, w := range words {
		t := `"` + strings.ReplaceAll(w.Text, `"`, `""`) + `"`
		if w.Prefix {
			t += "*"
		}
		terms = append(terms, t)
	}
	return strings.Join(terms, " AND ")
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func prefixed(p, cols string) string {
	f := strings.Split(cols, ",")
	for i, c := range f {
		f[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(f, ", ")
}
