package pgstore

import (
	"cmp"
	"context"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mjrelay/mjrelay/relay/store"
)

// load locks the plans' messages that are stored (in id order) and reads
// them with their recipients and the keys of their events.
func (b *batch) load(ps []*plan) error {
	for _, p := range ps {
		p.base, p.have, p.baseFB = nil, nil, store.FeedbackCounts{}
	}
	ids := sortedIDs(ps)
	if len(ids) == 0 {
		return nil
	}
	ctx := b.w.ctx
	rows, err := b.tx.Query(ctx, `SELECT `+rowColumns+` FROM store_messages m WHERE m.id = ANY($1) ORDER BY m.id FOR UPDATE`, ids)
	if err != nil {
		return err
	}
	byKey := map[int64]*plan{}
	var keys []int64
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return err
		}
		p := b.plans[r.ID]
		p.base, p.have = r, map[int64]bool{}
		byKey[r.Key] = p
		keys = append(keys, r.Key)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(keys) == 0 {
		return err
	}
	var q pgx.Batch
	q.Queue(`SELECT key, rcpt, state, reply, coalesce(mj_id, 0), coalesce(mj_uuid, '') FROM store_rcpts
		WHERE key = ANY($1)`, keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var key int64
			rc := &store.Rcpt{}
			var state string
			if err := rows.Scan(&key, &rc.Addr, &state, &rc.Reply, &rc.MailjetID, &rc.MailjetUUID); err != nil {
				return err
			}
			rc.State = store.State(state)
			r := byKey[key].base
			r.Rcpts = append(r.Rcpts, rc)
		}
		return rows.Err()
	})
	q.Queue(`SELECT key, pending, reported, failed, alerts FROM store_feedback WHERE key = ANY($1)`, keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var key int64
			var c store.FeedbackCounts
			if err := rows.Scan(&key, &c.Pending, &c.Reported, &c.Failed, &c.Alerts); err != nil {
				return err
			}
			byKey[key].baseFB = c
		}
		return rows.Err()
	})
	q.Queue(`SELECT key, evkey FROM store_events WHERE key = ANY($1)`, keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var key, evkey int64
			if err := rows.Scan(&key, &evkey); err != nil {
				return err
			}
			byKey[key].have[evkey] = true
		}
		return rows.Err()
	})
	return b.tx.SendBatch(ctx, &q).Close()
}

// write inserts the plans' new messages and writes what the others
// changed; it returns the plans to apply again: new messages another node
// inserted meanwhile (or whose key another took).
func (b *batch) write(ps []*plan) (redo []*plan, err error) {
	ctx := b.w.ctx
	var news rowArrays
	for _, p := range ps {
		if p.row != nil && p.isNew {
			news.add(p.row)
		}
	}
	inserted, err := insertNew(ctx, b.tx, &news)
	if err != nil {
		return nil, err
	}
	var w writes
	for _, p := range ps {
		if p.row != nil && p.isNew && !inserted[clean(p.row.ID)] {
			if p.refusal != nil {
				p.refusal.ID = "" // its id is another message's now: it gets one of its own
			}
			redo = append(redo, p)
			continue
		}
		for k, v := range p.stats {
			addStat(b.stats, k, v)
		}
		if p.row != nil && len(p.events) > 0 {
			w.add(p)
		}
	}
	return redo, w.send(ctx, b.tx)
}

// insertNew inserts rows (in id order, so that two nodes' batches never
// wait on each other in a circle), but none whose id or key is stored
// already; it returns the ids inserted.
func insertNew(ctx context.Context, tx pgx.Tx, rows *rowArrays) (map[string]bool, error) {
	inserted := map[string]bool{}
	if len(rows.key) == 0 {
		return inserted, nil
	}
	r, err := tx.Query(ctx, insertRows, rows.args()...)
	if err != nil {
		return nil, err
	}
	var id string
	_, err = pgx.ForEachRow(r, []any{&id}, func() error { inserted[id] = true; return nil })
	return inserted, err
}

// writes are what a batch's plans changed, as the columns of unnest()s.
type writes struct {
	updates rowArrays
	// recipients
	rKey, rMJID, rAt           []int64
	rRcpt, rState, rReply, rMU []string
	// events
	eKey, eEvkey, eAt []int64
	eKind, eData      []string
	// search and addresses
	sKey  []int64
	sText []string
	aKey  []int64
	aAddr []string
	// bodies, and those final now
	bKey, bFinal, bSize []int64
	bData               [][]byte
	fKey, fAt           []int64
	// reports to Odoo: counts, unsubscribe URLs
	cKey, cPending, cReported, cFailed, cAlerts []int64
	cState                                      []string
	uKey                                        []int64
	uURL                                        []string
}

func (w *writes) add(p *plan) {
	r := p.row
	if !p.isNew {
		w.updates.add(r)
	}
	for _, rc := range r.Rcpts {
		if rc.Dirty {
			w.rKey, w.rRcpt, w.rState, w.rReply = append(w.rKey, r.Key), append(w.rRcpt, clean(rc.Addr)),
				append(w.rState, string(rc.State)), append(w.rReply, clean(rc.Reply))
			w.rMJID, w.rMU, w.rAt = append(w.rMJID, rc.MailjetID), append(w.rMU, clean(rc.MailjetUUID)), append(w.rAt, r.UpdatedAt)
		}
	}
	for _, ev := range p.events {
		w.eKey, w.eEvkey, w.eAt = append(w.eKey, r.Key), append(w.eEvkey, ev.key), append(w.eAt, ev.At.UnixMilli())
		w.eKind, w.eData = append(w.eKind, ev.Kind), append(w.eData, clean(string(ev.Data)))
	}
	keys := p.newKeys
	if p.isNew || r.Full {
		subject, addrs, ids := r.SearchText()
		w.sKey, w.sText = append(w.sKey, r.Key), append(w.sText, tsvector(clean(subject), clean(addrs), clean(ids)))
		keys = r.AddrKeys()
	}
	for _, a := range keys {
		w.aKey, w.aAddr = append(w.aKey, r.Key), append(w.aAddr, clean(a))
	}
	if p.final {
		w.fKey, w.fAt = append(w.fKey, r.Key), append(w.fAt, r.FinalAt)
	}
	if p.fbChanged {
		w.feedback(r.Key, p.fb)
	}
	if p.unsubscribe != "" {
		w.uKey, w.uURL = append(w.uKey, r.Key), append(w.uURL, clean(p.unsubscribe))
	}
	if p.body != nil {
		w.bKey, w.bFinal, w.bSize, w.bData = append(w.bKey, r.Key), append(w.bFinal, r.FinalAt),
			append(w.bSize, int64(p.size)), append(w.bData, p.body)
	}
}

// feedback sets a message's report counts.
func (w *writes) feedback(key int64, c store.FeedbackCounts) {
	w.cKey, w.cState = append(w.cKey, key), append(w.cState, c.State())
	w.cPending, w.cReported = append(w.cPending, int64(c.Pending)), append(w.cReported, int64(c.Reported))
	w.cFailed, w.cAlerts = append(w.cFailed, int64(c.Failed)), append(w.cAlerts, int64(c.Alerts))
}

// send writes it all in one round trip.
func (w *writes) send(ctx context.Context, tx pgx.Tx) error {
	var q pgx.Batch
	if len(w.updates.key) > 0 {
		q.Queue(updateRows, w.updates.args()...)
	}
	if len(w.rKey) > 0 {
		q.Queue(`INSERT INTO store_rcpts (key, rcpt, state, reply, mj_id, mj_uuid, updated_at)
			SELECT u.key, u.rcpt, u.state, u.reply, NULLIF(u.mj_id, 0), NULLIF(u.mj_uuid, ''), u.at
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[])
				AS u(key, rcpt, state, reply, mj_id, mj_uuid, at)
			ON CONFLICT (key, rcpt) DO UPDATE SET state = excluded.state, reply = excluded.reply,
				mj_id = excluded.mj_id, mj_uuid = excluded.mj_uuid, updated_at = excluded.updated_at`,
			w.rKey, w.rRcpt, w.rState, w.rReply, w.rMJID, w.rMU, w.rAt)
	}
	if len(w.eKey) > 0 {
		q.Queue(`INSERT INTO store_events (key, evkey, at, kind, data)
			SELECT u.key, u.evkey, u.at, u.kind, u.data
			FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY AS u(key, evkey, at, kind, data, i)
			ORDER BY u.i ON CONFLICT DO NOTHING`, w.eKey, w.eEvkey, w.eAt, w.eKind, w.eData)
	}
	if len(w.sKey) > 0 {
		q.Queue(`INSERT INTO store_search (key, words) SELECT u.key, u.words::tsvector
			FROM unnest($1::bigint[], $2::text[]) AS u(key, words)
			ON CONFLICT (key) DO UPDATE SET words = excluded.words`, w.sKey, w.sText)
	}
	if len(w.aKey) > 0 {
		q.Queue(`INSERT INTO store_addrs (a, key) SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING`,
			w.aAddr, w.aKey)
	}
	if len(w.fKey) > 0 {
		q.Queue(`UPDATE store_bodies b SET final_at = u.at FROM unnest($1::bigint[], $2::bigint[]) AS u(key, at)
			WHERE b.key = u.key AND b.final_at IS NULL`, w.fKey, w.fAt)
	}
	if len(w.bKey) > 0 {
		q.Queue(`INSERT INTO store_bodies (key, final_at, size, data)
			SELECT u.key, NULLIF(u.final_at, 0), u.size, u.data
			FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[]) AS u(key, final_at, size, data)
			ON CONFLICT (key) DO UPDATE SET final_at = excluded.final_at, size = excluded.size, data = excluded.data`,
			w.bKey, w.bFinal, w.bSize, w.bData)
	}
	if len(w.uKey) > 0 {
		q.Queue(`INSERT INTO store_feedback (key, unsubscribe) SELECT * FROM unnest($1::bigint[], $2::text[])
			ON CONFLICT (key) DO UPDATE SET unsubscribe = excluded.unsubscribe`, w.uKey, w.uURL)
	}
	if len(w.cKey) > 0 {
		q.Queue(`INSERT INTO store_feedback (key, pending, reported, failed, alerts, state)
			SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::int[], $6::text[])
			ON CONFLICT (key) DO UPDATE SET pending = excluded.pending, reported = excluded.reported,
				failed = excluded.failed, alerts = excluded.alerts, state = excluded.state`,
			w.cKey, w.cPending, w.cReported, w.cFailed, w.cAlerts, w.cState)
	}
	if q.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &q).Close()
}

// writeStats adds the batch's counts to the per-minute counters, in key
// order (so that two nodes' batches never wait on each other in a
// circle).
func (b *batch) writeStats() error {
	if len(b.stats) == 0 {
		return nil
	}
	return upsertStats(b.w.ctx, b.tx, b.stats, "", false)
}

// execer runs a statement: a transaction or a pool.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// upsertStats adds counts to the counters of origin ("": the nodes'), in
// key order (so that two nodes' batches never wait on each other in a
// circle); with replace it sets them (a migration run again).
func upsertStats(ctx context.Context, db execer, c store.StatCounts, origin string, replace bool) error {
	keys := sortedStats(c)
	minute, n := make([]int64, len(keys)), make([]int64, len(keys))
	kind, class, reason := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	latSum, latMax := make([]float64, len(keys)), make([]float64, len(keys))
	for i, k := range keys {
		v := c[k]
		minute[i], kind[i], class[i], reason[i] = k.Minute, clean(k.Kind), clean(k.Class), clean(k.Reason)
		n[i], latSum[i], latMax[i] = v.N, v.LatSum, v.LatMax
	}
	set := `n = store_stats.n + excluded.n, lat_sum = store_stats.lat_sum + excluded.lat_sum,
		lat_max = greatest(store_stats.lat_max, excluded.lat_max)`
	if replace {
		set = `n = excluded.n, lat_sum = excluded.lat_sum, lat_max = excluded.lat_max`
	}
	_, err := db.Exec(ctx, `INSERT INTO store_stats (minute, kind, class, reason, origin, n, lat_sum, lat_max)
		SELECT u.minute, u.kind, u.class, u.reason, $8, u.n, u.lat_sum, u.lat_max
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::float8[], $7::float8[])
			WITH ORDINALITY AS u(minute, kind, class, reason, n, lat_sum, lat_max, i)
		ORDER BY u.i
		ON CONFLICT (minute, kind, class, reason, origin) DO UPDATE SET `+set,
		minute, kind, class, reason, n, latSum, latMax, origin)
	return err
}

// sortedStats returns the counters in key order.
func sortedStats(c store.StatCounts) []store.StatKey {
	keys := make([]store.StatKey, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b store.StatKey) int {
		return cmp.Or(cmp.Compare(a.Minute, b.Minute), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Class, b.Class),
			cmp.Compare(a.Reason, b.Reason))
	})
	return keys
}
