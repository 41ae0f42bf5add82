package inspect

import (
	"context"
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
	p, err := store.PlanList(f)
	if err != nil {
		return store.Page{}, err
	}
	// The driver is what the scan runs over in key order; with several,
	// each is a branch of a UNION.
	type driver struct {
		from, keyCol, cond string
		arg                any
	}
	var drivers []driver
	for _, sc := range p.Scans {
		switch {
		case sc.Addr != "":
			drivers = append(drivers, driver{"addrs a JOIN messages m ON m.key = a.key", "a.key", "a.a = ?", sc.Addr})
		case len(sc.Words) > 0:
			drivers = append(drivers, driver{"fts JOIN messages m ON m.key = fts.rowid", "fts.rowid", "fts MATCH ?", ftsQuery(sc.Words)})
		case sc.QueueID != "":
			drivers = append(drivers, driver{"messages m", "m.key", "m.id = ?", sc.QueueID})
		case sc.MailjetID != "":
			drivers = append(drivers, driver{"messages m", "m.key", "m.key IN (SELECT key FROM rcpts WHERE mj_id = ?)", sc.MailjetID})
		case sc.UUID != "":
			drivers = append(drivers, driver{"messages m", "m.key", "m.key IN (SELECT key FROM rcpts WHERE mj_uuid = ?)", sc.UUID})
		default:
			drivers = append(drivers, driver{from: "messages m", keyCol: "m.key"})
		}
	}
	var common query
	for _, a := range p.Addrs {
		common.add("EXISTS (SELECT 1 FROM addrs x WHERE x.a = ? AND x.key = m.key)", a)
	}
	var keyConds []string
	var keyArgs []any
	for _, b := range []struct {
		op  string
		key int64
	}{{" < ?", p.Below}, {" >= ?", p.AtLeast}, {" < ?", p.Under}} {
		if b.key != 0 {
			keyConds, keyArgs = append(keyConds, b.op), append(keyArgs, b.key)
		}
	}
	if len(p.States) == 1 {
		common.add("m.state = ?", p.States[0])
	} else if len(p.States) > 1 {
		common.add("m.state IN ("+placeholders(len(p.States))+")", anys(p.States)...)
	}
	if p.Class != "" {
		common.add("m.class = ?", p.Class)
	}
	if p.Reason != "" {
		common.add("m.why = ?", p.Reason)
	}
	feedbackFilter(&common, p.Feedback)
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
		args = append(append(args, q.args...), p.Limit+1)
	}
	sqlText := branches[0]
	if len(branches) > 1 {
		for i, b := range branches {
			branches[i] = "SELECT * FROM (" + b + ")"
		}
		sqlText = strings.Join(branches, " UNION ") + " ORDER BY 1 DESC LIMIT ?"
		args = append(args, p.Limit+1)
	}
	rows, err := s.rdb.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return store.Page{}, err
	}
	defer rows.Close()
	return store.ReadPage(rows, p.Limit, func(rows store.Rows) (*store.Row, error) {
		r, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		return &r.Row, nil
	})
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
