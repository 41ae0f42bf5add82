package inspect

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/mjrelay/mjrelay/relay/store"
)

var (
	queueIDRe = regexp.MustCompile(`^(?:[0-9a-f]{20}|r[0-9a-f]{16})$`)
	uuidRe    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	mjIDRe    = regexp.MustCompile(`^[0-9]{6,19}$`)
	domainRe  = regexp.MustCompile(`^@?[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z][a-z0-9-]+$`)
	// upstreamIDRe is what an upstream's queue id may look like.
	upstreamIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:+=/-]{5,99}$`)
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
	from, to := addrFilter("f:", f.From), addrFilter("t:", f.To)
	text := strings.TrimSpace(f.Q)
	addrDriver := func(a string) driver {
		return driver{"addrs a JOIN messages m ON m.key = a.key", "a.key", "a.a = ?", a}
	}
	// An id finds its message, and so does an upstream's id ("queued as")
	// that looks like it: each is a branch.
	byID := func(cond string, arg any) []driver {
		return []driver{{"messages m", "m.key", cond, arg}, addrDriver(upstreamKey(text))}
	}
	switch lower := strings.ToLower(text); {
	case queueIDRe.MatchString(lower):
		drivers, text = byID("m.id = ?", lower), ""
	case mjIDRe.MatchString(text):
		drivers, text = byID("m.key IN (SELECT key FROM rcpts WHERE mj_id = ?)", text), ""
	case uuidRe.MatchString(text):
		drivers, text = byID("m.key IN (SELECT key FROM rcpts WHERE mj_uuid = ?)", lower), ""
	case upstreamIDRe.MatchString(text) && strings.ContainsAny(text, "0123456789"):
		// A word with a digit: the text search, or an upstream's id.
		drivers = []driver{{"fts JOIN messages m ON m.key = fts.rowid", "fts.rowid", "fts MATCH ?", ftsQuery(text)},
			addrDriver(upstreamKey(text))}
		text = ""
	case domainRe.MatchString(lower):
		// A domain: messages from it or to it.
		d := strings.TrimPrefix(lower, "@")
		drivers = []driver{addrDriver("F:" + d), addrDriver("T:" + d)}
		text = ""
	}
	match := ftsQuery(text)
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
		keyConds, keyArgs = append(keyConds, " >= ?"), append(keyArgs, keyAt(f.Since))
	}
	if !f.Until.IsZero() {
		keyConds, keyArgs = append(keyConds, " < ?"), append(keyArgs, keyAt(f.Until))
	}
	if states := f.States(); len(states) == 1 {
		common.add("m.state = ?", states[0])
	} else if len(states) > 1 {
		common.add("m.state IN ("+placeholders(len(states))+")", anys(states)...)
	}
	if f.Class != "" {
		common.add("m.class = ?", f.Class)
	}
	if f.Reason != "" {
		common.add("m.why = ?", f.Reason)
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
		p.Messages = append(p.Messages, r.summary())
		last = r.key
	}
	return p, rows.Err()
}

// addrFilter turns a From/To filter into an addrs key ("" = none).
func addrFilter(prefix, v string) string {
	v = strings.ToLower(strings.Trim(strings.TrimSpace(v), "<>"))
	switch {
	case v == "":
		return ""
	case strings.HasPrefix(v, "@"):
		return strings.ToUpper(prefix) + v[1:]
	case !strings.Contains(v, "@"):
		return strings.ToUpper(prefix) + v
	}
	return prefix + v
}

// ftsQuery turns what an admin types into an FTS5 query: every word must
// match, as a prefix when it has three characters or more; quotes keep
// FTS5's syntax out of the user's hands.
func ftsQuery(text string) string {
	var terms []string
	for _, w := range strings.Fields(text) {
		w = strings.ReplaceAll(w, `"`, `""`)
		if strings.Trim(w, `"*^:()+-.,;@<>'`) == "" {
			continue
		}
		t := `"` + w + `"`
		if len([]rune(w)) >= 3 {
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
