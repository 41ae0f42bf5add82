package pgstore

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mjrelay/mjrelay/relay/store"
)

// rowColumns are the store_messages columns a store.Row is read from.
const rowColumns = `m.key, m.id, m.received_at, m.updated_at, coalesce(m.final_at, 0), m.state, m.class, m.class_rule,
	m.mail_from, m.rcpt_to, m.header_from, m.subject, m.message_id, m.size, m.login, m.client, m.helo, m.tls,
	m.verdict, m.reason, m.stage, m.reply, m.transport, m.upstream, m.attempts, m.mailjet_ids, coalesce(m.latency_ms, 0),
	m.why, m.upstream_ids, m.attachments`

func scanRow(sc interface{ Scan(...any) error }) (*store.Row, error) {
	r := &store.Row{}
	var state string
	err := sc.Scan(&r.Key, &r.ID, &r.ReceivedAt, &r.UpdatedAt, &r.FinalAt, &state, &r.Class, &r.ClassRule,
		&r.MailFrom, &r.RcptTo, &r.HeaderFrom, &r.Subject, &r.MessageID, &r.Size, &r.User, &r.Client, &r.Helo, &r.TLS,
		&r.Verdict, &r.Reason, &r.Stage, &r.Reply, &r.Transport, &r.Upstream, &r.Attempts, &r.MailjetIDs, &r.LatencyMS,
		&r.Why, &r.UpstreamIDs, &r.Attachments)
	r.State = store.State(state)
	return r, err
}

// rowArrays are rows as the columns of an unnest(): one array a column.
type rowArrays struct {
	key, receivedAt, updatedAt, finalAt, size                       []int64
	id, state, class, classRule, mailFrom, rcptTo, headerFrom       []string
	subject, messageID, login, client, helo, verdict, reason, stage []string
	reply, transport, upstream, mailjetIDs, why, upstreamIDs        []string
	tls                                                             []bool
	attempts, attachments                                           []int32
	latency                                                         []float64
}

func (a *rowArrays) add(r *store.Row) {
	a.key = append(a.key, r.Key)
	a.id = append(a.id, clean(r.ID))
	a.receivedAt = append(a.receivedAt, r.ReceivedAt)
	a.updatedAt = append(a.updatedAt, r.UpdatedAt)
	a.finalAt = append(a.finalAt, r.FinalAt)
	a.state = append(a.state, string(r.State))
	a.class = append(a.class, clean(r.Class))
	a.classRule = append(a.classRule, clean(r.ClassRule))
	a.mailFrom = append(a.mailFrom, clean(r.MailFrom))
	a.rcptTo = append(a.rcptTo, clean(r.RcptTo))
	a.headerFrom = append(a.headerFrom, clean(r.HeaderFrom))
	a.subject = append(a.subject, clean(r.Subject))
	a.messageID = append(a.messageID, clean(r.MessageID))
	a.size = append(a.size, r.Size)
	a.login = append(a.login, clean(r.User))
	a.client = append(a.client, clean(r.Client))
	a.helo = append(a.helo, clean(r.Helo))
	a.tls = append(a.tls, r.TLS)
	a.verdict = append(a.verdict, clean(r.Verdict))
	a.reason = append(a.reason, clean(r.Reason))
	a.stage = append(a.stage, clean(r.Stage))
	a.reply = append(a.reply, clean(r.Reply))
	a.transport = append(a.transport, clean(r.Transport))
	a.upstream = append(a.upstream, clean(r.Upstream))
	a.attempts = append(a.attempts, int32(r.Attempts))
	a.mailjetIDs = append(a.mailjetIDs, clean(r.MailjetIDs))
	a.latency = append(a.latency, r.LatencyMS)
	a.why = append(a.why, clean(r.Why))
	a.upstreamIDs = append(a.upstreamIDs, clean(r.UpstreamIDs))
	a.attachments = append(a.attachments, int32(r.Attachments))
}

// args are the arrays in the order of rowUnnest's columns.
func (a *rowArrays) args() []any {
	return []any{a.key, a.id, a.receivedAt, a.updatedAt, a.finalAt, a.state, a.class, a.classRule, a.mailFrom,
		a.rcptTo, a.headerFrom, a.subject, a.messageID, a.size, a.login, a.client, a.helo, a.tls, a.verdict,
		a.reason, a.stage, a.reply, a.transport, a.upstream, a.attempts, a.mailjetIDs, a.latency, a.why, a.upstreamIDs,
		a.attachments}
}

// rowCols are the columns of rowArrays.args, with their types.
var rowCols = []struct{ name, typ string }{{"key", "bigint"}, {"id", "text"}, {"received_at", "bigint"},
	{"updated_at", "bigint"}, {"final_at", "bigint"}, {"state", "text"}, {"class", "text"}, {"class_rule", "text"},
	{"mail_from", "text"}, {"rcpt_to", "text"}, {"header_from", "text"}, {"subject", "text"}, {"message_id", "text"},
	{"size", "bigint"}, {"login", "text"}, {"client", "text"}, {"helo", "text"}, {"tls", "boolean"}, {"verdict", "text"},
	{"reason", "text"}, {"stage", "text"}, {"reply", "text"}, {"transport", "text"}, {"upstream", "text"},
	{"attempts", "integer"}, {"mailjet_ids", "text"}, {"latency_ms", "double precision"}, {"why", "text"},
	{"upstream_ids", "text"}, {"attachments", "integer"}}

// rowUnnest is "unnest($1::bigint[], ...) AS u(key, ...)" over
// rowArrays.args; rowNames the columns, rowValues their values from u and
// rowSet the assignments of an UPDATE from u.
var rowUnnest, rowNames, rowValues, rowSet = func() (unnest, names, values, set string) {
	var params, cols, vals, sets []string
	for i, c := range rowCols {
		params = append(params, fmt.Sprintf("$%d::%s[]", i+1, c.typ))
		cols = append(cols, c.name)
		v := "u." + c.name
		switch c.name {
		case "final_at", "latency_ms":
			v = "NULLIF(" + v + ", 0)"
		}
		vals = append(vals, v)
		if c.name != "key" && c.name != "id" {
			sets = append(sets, c.name+" = "+v)
		}
	}
	return "unnest(" + strings.Join(params, ", ") + ") AS u(" + strings.Join(cols, ", ") + ")",
		strings.Join(cols, ", "), strings.Join(vals, ", "), strings.Join(sets, ", ")
}()

var (
	insertRows = `INSERT INTO store_messages (` + rowNames + `) SELECT ` + rowValues + ` FROM ` + rowUnnest + ` ORDER BY u.id ON CONFLICT DO NOTHING RETURNING id`
	updateRows = `UPDATE store_messages m SET ` + rowSet + ` FROM ` + rowUnnest + ` WHERE m.key = u.key`
)

// clean makes a text PostgreSQL takes: valid UTF-8 without NUL bytes
// (what a client sent may be neither).
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}
