package inspect

import (
	"database/sql"

	"github.com/mjrelay/mjrelay/relay/store"
)

// rowColumns are the messages columns in row order.
const rowColumns = `key, id, received_at, updated_at, final_at, state, class, class_rule, mail_from, rcpt_to,
	header_from, subject, message_id, size, user, client, helo, tls, verdict, reason, stage, reply,
	transport, upstream, attempts, mailjet_ids, latency_ms, why, upstream_ids, attachments`

// row is one messages row.
type row struct {
	store.Row
	rcptsLoaded bool // Rcpts are loaded (by the writer, on demand)
	// pending marks a row created in this batch, not inserted yet.
	pending bool
}

type scanner interface{ Scan(dest ...any) error }

func scanRow(sc scanner) (*row, error) {
	r := &row{}
	var final sql.NullInt64
	var lat sql.NullFloat64
	err := sc.Scan(&r.Key, &r.ID, &r.ReceivedAt, &r.UpdatedAt, &final, &r.State, &r.Class, &r.ClassRule,
		&r.MailFrom, &r.RcptTo, &r.HeaderFrom, &r.Subject, &r.MessageID, &r.Size, &r.User, &r.Client, &r.Helo,
		&r.TLS, &r.Verdict, &r.Reason, &r.Stage, &r.Reply, &r.Transport, &r.Upstream, &r.Attempts,
		&r.MailjetIDs, &lat, &r.Why, &r.UpstreamIDs, &r.Attachments)
	r.FinalAt, r.LatencyMS = final.Int64, lat.Float64
	return r, err
}

// values returns the row in rowColumns order.
func (r *row) values() []any {
	return []any{r.Key, r.ID, r.ReceivedAt, r.UpdatedAt, nullInt(r.FinalAt), r.State, r.Class, r.ClassRule,
		r.MailFrom, r.RcptTo, r.HeaderFrom, r.Subject, r.MessageID, r.Size, r.User, r.Client, r.Helo,
		r.TLS, r.Verdict, r.Reason, r.Stage, r.Reply, r.Transport, r.Upstream, r.Attempts,
		r.MailjetIDs, nullFloat(r.LatencyMS), r.Why, r.UpstreamIDs, r.Attachments}
}

// updateValues returns the arguments of the updateMsg statement.
func (r *row) updateValues() []any {
	v := r.values()
	return append(v[2:], r.Key)
}

// stateValues returns the arguments of the updateState statement.
func (r *row) stateValues() []any {
	return []any{r.UpdatedAt, nullInt(r.FinalAt), r.State, r.Reason, r.Reply, r.Transport, r.Upstream,
		r.Attempts, r.MailjetIDs, nullFloat(r.LatencyMS), r.Why, r.UpstreamIDs, r.Key}
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
	c.cur[r.ID] = r
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
