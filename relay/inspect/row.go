package inspect

import (
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

// rowColumns are the messages columns in row order.
const rowColumns = `key, id, received_at, updated_at, final_at, state, class, class_rule, mail_from, rcpt_to,
	header_from, subject, message_id, size, user, client, helo, tls, verdict, reason, stage, reply,
	transport, upstream, attempts, mailjet_ids, latency_ms, why, upstream_ids, attachments`

// row is one messages row.
type row struct {
	key                  int64
	id                   string
	receivedAt           int64 // unix ms
	updatedAt            int64
	finalAt              int64 // 0 = still queued
	state                store.State
	class, classRule     string
	mailFrom             string
	rcptTo               string // newline-separated
	headerFrom           string
	subject, messageID   string
	size                 int64
	user, client, helo   string
	tls                  bool
	verdict, reason      string
	stage, reply         string
	transport, upstream  string
	attempts             int
	mailjetIDs           string // space-separated
	latencyMS            float64
	why                  string // store.Summary.Why
	upstreamIDs          string // space-separated
	attachments          int
	rcpts                []*rcptRow // loaded on demand by the writer
	rcptsLoaded, touched bool
	// full marks a row whose envelope columns changed (the writer then
	// updates every column and the search indexes, else only the delivery
	// columns).
	full bool
	// pending marks a row created in this batch, not inserted yet.
	pending bool
}

type rcptRow struct {
	addr, reply string
	state       store.State
	mjID        int64
	mjUUID      string
	dirty       bool
}

type scanner interface{ Scan(dest ...any) error }

func scanRow(sc scanner) (*row, error) {
	r := &row{}
	var final sql.NullInt64
	var lat sql.NullFloat64
	err := sc.Scan(&r.key, &r.id, &r.receivedAt, &r.updatedAt, &final, &r.state, &r.class, &r.classRule,
		&r.mailFrom, &r.rcptTo, &r.headerFrom, &r.subject, &r.messageID, &r.size, &r.user, &r.client, &r.helo,
		&r.tls, &r.verdict, &r.reason, &r.stage, &r.reply, &r.transport, &r.upstream, &r.attempts,
		&r.mailjetIDs, &lat, &r.why, &r.upstreamIDs, &r.attachments)
	r.finalAt, r.latencyMS = final.Int64, lat.Float64
	return r, err
}

// values returns the row in rowColumns order.
func (r *row) values() []any {
	return []any{r.key, r.id, r.receivedAt, r.updatedAt, nullInt(r.finalAt), r.state, r.class, r.classRule,
		r.mailFrom, r.rcptTo, r.headerFrom, r.subject, r.messageID, r.size, r.user, r.client, r.helo,
		r.tls, r.verdict, r.reason, r.stage, r.reply, r.transport, r.upstream, r.attempts,
		r.mailjetIDs, nullFloat(r.latencyMS), r.why, r.upstreamIDs, r.attachments}
}

// updateValues returns the arguments of the updateMsg statement.
func (r *row) updateValues() []any {
	v := r.values()
	return append(v[2:], r.key)
}

// stateValues returns the arguments of the updateState statement.
func (r *row) stateValues() []any {
	return []any{r.updatedAt, nullInt(r.finalAt), r.state, r.reason, r.reply, r.transport, r.upstream,
		r.attempts, r.mailjetIDs, nullFloat(r.latencyMS), r.why, r.upstreamIDs, r.key}
}

// rowCache keeps the rows the writer touched recently, so that the events
// that follow a message's receipt do not read it back: two generations of
// at most cacheSize rows each, the older dropped when the newer fills up.
// Only the writer writes, so cached rows are always current.
type rowCache struct {
	cur, old map[string]*row
}

const cacheSize = 20_000

// A row created in a batch is inserted only at the batch's end (flushRows),
// found meanwhile through this cache alone: the cache must keep every row a
// batch touches, which a generation of cacheSize ≥ maxBatch events does.
const _ = uint(cacheSize - maxBatch) // does not compile otherwise

func (c *rowCache) get(id string) *row {
	if r := c.cur[id]; r != nil {
		return r
	}
	if r := c.old[id]; r != nil {
		c.put(r)
		return r
	}
	return nil
}

func (c *rowCache) put(r *row) {
	if c.cur == nil || len(c.cur) >= cacheSize {
		c.old, c.cur = c.cur, make(map[string]*row, cacheSize/4)
	}
	c.cur[r.id] = r
}

func (c *rowCache) reset() { c.cur, c.old = nil, nil }

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func nullFloat(v float64) any {
	if v == 0 {
		return nil
	}
	return v
}

func (r *row) to() []string {
	if r.rcptTo == "" {
		return []string{}
	}
	return strings.Split(r.rcptTo, "\n")
}

func (r *row) addMailjetID(id string) {
	if id == "" || id == "0" {
		return
	}
	for _, x := range strings.Fields(r.mailjetIDs) {
		if x == id {
			return
		}
	}
	if r.mailjetIDs != "" {
		r.mailjetIDs += " "
	}
	r.mailjetIDs += id
	r.touched = true
}

// maxUpstreamIDs bounds the ids kept per message (one per attempt that
// got one).
const maxUpstreamIDs = 8

// addUpstreamID notes an id the upstream gave the message and reports
// whether it is new.
func (r *row) addUpstreamID(id string) bool {
	id = strings.TrimSpace(id)
	if id == "" || len(id) > 100 || strings.ContainsAny(id, " \t\r\n") {
		return false
	}
	ids := strings.Fields(r.upstreamIDs)
	if len(ids) >= maxUpstreamIDs || slices.Contains(ids, id) {
		return false
	}
	r.upstreamIDs = strings.Join(append(ids, id), " ")
	return true
}

// summary converts the row for the API.
func (r *row) summary() store.Summary {
	ids := strings.Fields(r.mailjetIDs)
	if ids == nil {
		ids = []string{}
	}
	return store.Summary{
		ID: r.id, ReceivedAt: time.UnixMilli(r.receivedAt).UTC(), State: r.state, Class: r.class,
		From: r.mailFrom, HeaderFrom: r.headerFrom, To: r.to(), Subject: r.subject, MessageID: r.messageID,
		Size: r.size, User: r.user, Client: r.client, Transport: r.transport, MailjetIDs: ids,
		Attempts: r.attempts, Reply: r.reply, Reason: r.reason, Why: r.why, Attachments: r.attachments,
	}
}

// addrKeys are the addrs rows of a message: "f:"/"t:" addresses and
// "F:"/"T:" domains, lower-cased.
func (r *row) addrKeys() []string {
	var out []string
	seen := map[string]bool{}
	add := func(prefix, addr string) {
		a := strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
		if a == "" {
			return
		}
		for _, k := range []string{prefix + a, domainKey(prefix, a)} {
			if k != "" && !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	add("f:", r.mailFrom)
	add("f:", r.headerFrom)
	for _, t := range r.to() {
		add("t:", t)
	}
	for _, id := range strings.Fields(r.upstreamIDs) {
		if k := upstreamKey(id); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// upstreamKey is the addrs row that finds a message by an upstream id.
func upstreamKey(id string) string { return "u:" + strings.ToLower(id) }

func domainKey(prefix, addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return ""
	}
	return strings.ToUpper(prefix) + addr[at+1:]
}

// ftsText is what the full-text index sees of a message.
func (r *row) ftsText() (subject, addrs, ids string) {
	a := r.mailFrom + " " + r.headerFrom + " " + strings.ReplaceAll(r.rcptTo, "\n", " ")
	return r.subject, a, r.id + " " + r.messageID + " " + r.user
}
