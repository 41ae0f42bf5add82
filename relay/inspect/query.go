package inspect

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned for an unknown message id.
var ErrNotFound = errors.New("inspect: no such message")

// Filter selects messages. Empty fields do not filter.
type Filter struct {
	// State is one state or several separated by commas.
	State string
	Class string
	// From and To match an address exactly (case-insensitive), or a whole
	// domain when given as "@example.com" or "example.com". From matches
	// the envelope sender and the header From.
	From, To string
	// Q searches subject, addresses, queue id, Message-Id and login; a
	// queue id, a Mailjet message id or UUID finds that message directly.
	Q string
	// Since and Until bound the receive time (Until exclusive).
	Since, Until time.Time
	// Limit is the page size (default 50, at most 1000).
	Limit int
	// Cursor is Page.Next of the previous page.
	Cursor string
}

// Summary is one message in a list.
type Summary struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	State      string    `json:"state"`
	Class      string    `json:"class"`
	From       string    `json:"from"`
	HeaderFrom string    `json:"header_from,omitempty"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	MessageID  string    `json:"message_id"`
	Size       int64     `json:"size"`
	User       string    `json:"user"`
	Client     string    `json:"client"`
	Transport  string    `json:"transport"`
	// MailjetIDs are Mailjet's message ids (strings: they exceed
	// JavaScript's integers).
	MailjetIDs []string `json:"mailjet_ids"`
	Attempts   int      `json:"attempt_count"`
	Reply      string   `json:"reply,omitempty"`
	Reason     string   `json:"reason,omitempty"`

	key int64
}

// Page is a list of messages, newest first.
type Page struct {
	Messages []Summary `json:"messages"`
	// Next is the cursor of the following (older) page, "" at the end.
	Next string `json:"next"`
}

var (
	queueIDRe = regexp.MustCompile(`^(?:[0-9a-f]{20}|r[0-9a-f]{16})$`)
	uuidRe    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	mjIDRe    = regexp.MustCompile(`^[0-9]{6,19}$`)
)

// query is a SELECT being built: driver is the table the scan runs on in
// key order (messages, an addrs range or the FTS index); the other filters
// are conditions on m.
type query struct {
	from   string
	keyCol string
	where  []string
	args   []any
}

func (q *query) add(cond string, args ...any) {
	q.where = append(q.where, cond)
	q.args = append(q.args, args...)
}

// List returns one page of messages matching f, newest first.
func (s *Store) List(ctx context.Context, f Filter) (Page, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	q := &query{from: "messages m", keyCol: "m.key"}
	from, to := addrFilter("f:", f.From), addrFilter("t:", f.To)
	text := strings.TrimSpace(f.Q)
	switch {
	case queueIDRe.MatchString(strings.ToLower(text)):
		q.add("m.id = ?", strings.ToLower(text))
		text = ""
	case mjIDRe.MatchString(text):
		q.add("m.key IN (SELECT key FROM rcpts WHERE mj_id = ?)", text)
		text = ""
	case uuidRe.MatchString(text):
		q.add("m.key IN (SELECT key FROM rcpts WHERE mj_uuid = ?)", strings.ToLower(text))
		text = ""
	}
	match := ftsQuery(text)
	switch {
	case match != "":
		q.from, q.keyCol = "fts JOIN messages m ON m.key = fts.rowid", "fts.rowid"
		q.add("fts MATCH ?", match)
	case to != "":
		q.from, q.keyCol = "addrs a JOIN messages m ON m.key = a.key", "a.key"
		q.add("a.a = ?", to)
		to = ""
	case from != "":
		q.from, q.keyCol = "addrs a JOIN messages m ON m.key = a.key", "a.key"
		q.add("a.a = ?", from)
		from = ""
	}
	for _, a := range []string{from, to} {
		if a != "" {
			q.add("EXISTS (SELECT 1 FROM addrs x WHERE x.a = ? AND x.key = m.key)", a)
		}
	}
	if f.Cursor != "" {
		c, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil {
			return Page{}, fmt.Errorf("bad cursor %q", f.Cursor)
		}
		q.add(q.keyCol+" < ?", c)
	}
	if !f.Since.IsZero() {
		q.add(q.keyCol+" >= ?", keyAt(f.Since))
	}
	if !f.Until.IsZero() {
		q.add(q.keyCol+" < ?", keyAt(f.Until))
	}
	if states := splitList(f.State); len(states) == 1 {
		q.add("m.state = ?", states[0])
	} else if len(states) > 1 {
		q.add("m.state IN ("+strings.TrimSuffix(strings.Repeat("?,", len(states)), ",")+")", anys(states)...)
	}
	if f.Class != "" {
		q.add("m.class = ?", f.Class)
	}
	sqlText := "SELECT " + prefixed("m.", rowColumns) + " FROM " + q.from
	if len(q.where) > 0 {
		sqlText += " WHERE " + strings.Join(q.where, " AND ")
	}
	sqlText += " ORDER BY " + q.keyCol + " DESC LIMIT ?"
	rows, err := s.rdb.QueryContext(ctx, sqlText, append(q.args, limit+1)...)
	if err != nil {
		return Page{}, err
	}
	defer rows.Close()
	p := Page{Messages: []Summary{}}
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return Page{}, err
		}
		if len(p.Messages) == limit {
			p.Next = strconv.FormatInt(p.Messages[limit-1].key, 10)
			break
		}
		p.Messages = append(p.Messages, r.summary())
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

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
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
