package pgstore

import (
	"cmp"
	"encoding/json"
	"errors"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// errRetry: the batch met a concurrent writer too often; it is run again.
var errRetry = errors.New("traffic store: concurrent writers, batch run again")

// plan is a batch's work on one message: its events in the order
// recorded, and what applying them to the message as stored gave.
type plan struct {
	id      string
	refusal *trafficlog.Event // a refusal: a message of its own
	items   []item

	base   *store.Row     // the message as stored (locked), or nil
	have   map[int64]bool // the keys of its stored events
	baseFB store.FeedbackCounts

	row    *store.Row
	isNew  bool
	events []keyedEvent
	body   []byte
	size   int
	final  bool // left the queue in this batch
	stats  store.StatCounts
	// address keys the events added (store.Row.NewKeys)
	newKeys []string
	// the reports to Odoo: their counts (when changed), the message's
	// one-click unsubscribe URL (when received)
	fb          store.FeedbackCounts
	fbChanged   bool
	unsubscribe string
}

// item is one event of a plan.
type item struct {
	ev          *trafficlog.Event
	mj          *webhook.Event
	body        []byte // deflated ev.Raw
	attachments int    // ev.Raw's
	evkey       int64
}

type keyedEvent struct {
	key int64
	store.StoredEvent
}

// batch is one transaction of the writer.
type batch struct {
	w        *writer
	tx       pgx.Tx
	plans    map[string]*plan
	order    []*plan // message plans, then refusals, in the order met
	unjoined store.StatCounts
	stats    store.StatCounts
}

// commit stores records in one transaction: it groups them by message,
// locks the messages (in id order) and applies their events, inserting
// the messages that are new; a message another node inserted meanwhile is
// locked and applied to again, in the same transaction.
func (w *writer) commit(records []*store.Entry) error {
	if err := w.s.schema.Ready(w.ctx); err != nil {
		return err
	}
	tx, err := w.s.db.Begin(w.ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(w.ctx)
	b := &batch{w: w, tx: tx, plans: map[string]*plan{}, unjoined: store.StatCounts{}, stats: store.StatCounts{}}
	if err := b.group(records); err != nil {
		return err
	}
	pending := b.order
	for round := 0; len(pending) > 0; round++ {
		if round == 4 {
			return errRetry
		}
		if err := b.load(pending); err != nil {
			return err
		}
		for _, p := range pending {
			b.apply(p)
		}
		if pending, err = b.write(pending); err != nil {
			return err
		}
	}
	for k, v := range b.unjoined {
		addStat(b.stats, k, v)
	}
	if err := b.writeStats(); err != nil {
		return err
	}
	return tx.Commit(w.ctx)
}

// group makes the plans: the relay's events by queue id, Mailjet's joined
// to their message (by CustomID, then MessageID, then MessageUUID, among
// the messages stored and those of the batch), refusals each a plan.
func (b *batch) group(records []*store.Entry) error {
	var ask []*store.Entry // Mailjet's events and refusals with an id: asked about the stored messages
	for _, en := range records {
		if en.MJ != nil {
			store.PrepareMailjet(en.MJ, b.w.s.opts.Now())
			ask = append(ask, en)
		} else if en.Ev.Event == trafficlog.Refused && en.Ev.ID != "" {
			ask = append(ask, en)
		}
	}
	known, err := b.resolve(ask)
	if err != nil {
		return err
	}
	byMJID, byUUID := map[int64]string{}, map[string]string{}
	for _, en := range records {
		e := &en.Ev
		switch {
		case en.MJ != nil:
			id := b.join(en.MJ, known[en], byMJID, byUUID)
			if id == "" {
				store.CountUnjoined(en.MJ, b.unjoined)
				continue
			}
			p := b.plan(id)
			p.items = append(p.items, item{mj: en.MJ, evkey: eventKey(en.MJ)})
		case e.Event == trafficlog.Aborted:
		case e.Event == trafficlog.Refused:
			ev := *e
			if ev.ID != "" && (b.plans[ev.ID] != nil || known[en].exists) {
				ev.ID = "" // a refusal of a message the store knows: keep both
			}
			b.order = append(b.order, &plan{refusal: &ev})
		case e.ID != "":
			p := b.plan(e.ID)
			p.items = append(p.items, item{ev: e, body: en.Body, attachments: en.Attachments, evkey: eventKey(e)})
			for _, r := range e.Rcpts {
				if r.MessageID != 0 {
					byMJID[r.MessageID] = e.ID
				}
				if r.MessageUUID != "" {
					byUUID[strings.ToLower(r.MessageUUID)] = e.ID
				}
			}
		}
	}
	return nil
}

func (b *batch) plan(id string) *plan {
	p := b.plans[id]
	if p == nil {
		p = &plan{id: id}
		b.plans[id] = p
		b.order = append(b.order, p)
	}
	return p
}

// answer is what the stored messages say of an event to join.
type answer struct {
	exists         bool   // the queue id (CustomID, a refusal's id) is a stored message's
	byMJID, byUUID string // the stored message with a recipient of this Mailjet id, UUID
}

// resolve asks the stored messages about the events to join, in one query.
func (b *batch) resolve(ask []*store.Entry) (map[*store.Entry]answer, error) {
	out := map[*store.Entry]answer{}
	if len(ask) == 0 {
		return out, nil
	}
	ids, mjIDs, uuids := make([]string, len(ask)), make([]int64, len(ask)), make([]string, len(ask))
	for i, en := range ask {
		if en.MJ != nil {
			ids[i], mjIDs[i], uuids[i] = en.MJ.CustomID, en.MJ.MessageID, en.MJ.MessageUUID
		} else {
			ids[i] = en.Ev.ID
		}
	}
	rows, err := b.tx.Query(b.w.ctx, `SELECT c.i,
		EXISTS (SELECT 1 FROM store_messages WHERE id = c.id),
		coalesce((SELECT m.id FROM store_rcpts r JOIN store_messages m ON m.key = r.key WHERE r.mj_id = c.mj LIMIT 1), ''),
		coalesce((SELECT m.id FROM store_rcpts r JOIN store_messages m ON m.key = r.key WHERE r.mj_uuid = c.uuid LIMIT 1), '')
		FROM unnest($1::text[], $2::bigint[], $3::text[]) WITH ORDINALITY AS c(id, mj, uuid, i)`, ids, mjIDs, uuids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var i int
		var a answer
		if err := rows.Scan(&i, &a.exists, &a.byMJID, &a.byUUID); err != nil {
			return nil, err
		}
		out[ask[i-1]] = a
	}
	return out, rows.Err()
}

// join returns the id of the message a Mailjet event belongs to ("" when
// none): by CustomID, then MessageID, then MessageUUID, among the messages
// of the batch so far and those stored.
func (b *batch) join(ev *webhook.Event, a answer, byMJID map[int64]string, byUUID map[string]string) string {
	if ev.CustomID != "" && (b.plans[ev.CustomID] != nil || a.exists) {
		return ev.CustomID
	}
	if ev.MessageID != 0 {
		if id := cmp.Or(byMJID[ev.MessageID], a.byMJID); id != "" {
			return id
		}
	}
	if ev.MessageUUID != "" {
		return cmp.Or(byUUID[ev.MessageUUID], a.byUUID)
	}
	return ""
}

// eventKey is the key an event is stored under: a hash of all of it, so
// that an event recorded twice is stored once.
func eventKey(v any) int64 {
	data, _ := json.Marshal(v)
	h := fnv.New64a()
	h.Write(data)
	return int64(h.Sum64())
}

// apply applies the plan's events to the message as loaded.
func (b *batch) apply(p *plan) {
	p.stats, p.events, p.body, p.size, p.final, p.isNew = store.StatCounts{}, nil, nil, 0, false, false
	p.fb, p.fbChanged, p.unsubscribe, p.newKeys = p.baseFB, false, "", nil
	if p.refusal != nil {
		e := p.refusal
		r, ev := store.NewRefusal(e, b.w.newKey(store.ReceivedMS(e.ID, e.Time)), p.stats)
		p.row, p.isNew, p.events = r, true, []keyedEvent{{eventKey(e), ev}}
		return
	}
	r := p.base
	seen := map[int64]bool{}
	for _, it := range p.items {
		if p.have[it.evkey] || seen[it.evkey] {
			continue // recorded already
		}
		seen[it.evkey] = true
		var ev store.StoredEvent
		var ms int64
		if e := it.ev; e != nil && e.Event == trafficlog.Feedback {
			if r == nil {
				continue // a message the store does not know: nothing to attach it to
			}
			ev, changed := r.ApplyFeedback(e, &p.fb, p.stats)
			p.fbChanged = p.fbChanged || changed
			p.events = append(p.events, keyedEvent{it.evkey, ev})
			continue
		} else if e != nil {
			if r == nil {
				r, p.isNew = store.NewRow(e, b.w.newKey(store.ReceivedMS(e.ID, e.Time)), p.stats), true
			}
			if e.Event == trafficlog.Received && it.body != nil {
				p.body, p.size, r.Attachments = it.body, len(e.Raw), it.attachments
			}
			var err error
			if ev, err = r.Apply(e, p.stats); err != nil {
				b.w.logErr("cannot record an event in the traffic store", err, "event", e.Event, "id", e.ID)
				continue
			}
			p.newKeys, r.NewKeys = append(p.newKeys, r.NewKeys...), nil
			if e.Event == trafficlog.Received && e.Unsubscribe != "" {
				p.unsubscribe = e.Unsubscribe
			}
			ms = e.Time.UnixMilli()
		} else {
			if r == nil {
				store.CountUnjoined(it.mj, p.stats)
				continue
			}
			ev, ms = r.ApplyMailjet(it.mj, p.stats), it.mj.Time.UnixMilli()
		}
		p.events = append(p.events, keyedEvent{it.evkey, ev})
		if r.Settle(ms, p.stats) {
			p.final = true
		}
	}
	p.row = r
}

func addStat(to store.StatCounts, k store.StatKey, v *store.StatVal) {
	x := to[k]
	if x == nil {
		x = &store.StatVal{}
		to[k] = x
	}
	x.N += v.N
	x.LatSum += v.LatSum
	x.LatMax = max(x.LatMax, v.LatMax)
}

// sortedIDs returns the plans' message ids in order (the order rows are
// locked in).
func sortedIDs(ps []*plan) []string {
	var ids []string
	for _, p := range ps {
		if p.refusal == nil {
			ids = append(ids, p.id)
		}
	}
	slices.Sort(ids)
	return ids
}
