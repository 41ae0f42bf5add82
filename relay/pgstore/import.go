package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/relay/store"
)

// Import adds the messages another store held (a migration) in one
// transaction, under their keys there (so that they list in the same
// order) unless another message has the key. A message whose id is stored
// already (a migration run again, or a message the cluster has recorded
// since) keeps its row; only the events it lacks are added. Run again, it
// changes nothing. It returns how many messages were new.
func (s *Store) Import(ctx context.Context, ds []store.Dump) (added int, err error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	keys := map[string]int64{} // the stored key of each dump's id
	todo := make([]*store.Dump, 0, len(ds))
	for i := range ds {
		ds[i].Row.ID = clean(ds[i].Row.ID)
		todo = append(todo, &ds[i])
	}
	var w writes
	for round := 0; len(todo) > 0; round++ {
		if round == 4 {
			return 0, errRetry
		}
		var rows rowArrays
		for _, d := range todo {
			if round > 0 {
				d.Row.Key = s.w.newKey(d.Row.ReceivedAt)
			}
			rows.add(&d.Row)
		}
		inserted, err := insertNew(ctx, tx, &rows)
		if err != nil {
			return 0, err
		}
		var left []*store.Dump
		var ids []string
		for _, d := range todo {
			if inserted[d.Row.ID] {
				keys[d.Row.ID] = d.Row.Key
				w.addImported(d)
				added++
			} else {
				ids = append(ids, d.Row.ID)
			}
		}
		// Not inserted: stored already, or its key was another's.
		stored := map[string]int64{}
		if len(ids) > 0 {
			r, err := tx.Query(ctx, `SELECT id, key FROM store_messages WHERE id = ANY($1)`, ids)
			if err != nil {
				return 0, err
			}
			var id string
			var key int64
			if _, err := pgx.ForEachRow(r, []any{&id, &key}, func() error { stored[id] = key; return nil }); err != nil {
				return 0, err
			}
		}
		for _, d := range todo {
			if key, ok := stored[d.Row.ID]; ok {
				keys[d.Row.ID] = key
			} else if !inserted[d.Row.ID] {
				left = append(left, d)
			}
		}
		todo = left
	}
	for i := range ds {
		d := &ds[i]
		for _, ev := range d.Events {
			w.eKey, w.eEvkey, w.eAt = append(w.eKey, keys[d.Row.ID]), append(w.eEvkey, eventKey(ev)), append(w.eAt, ev.At.UnixMilli())
			w.eKind, w.eData = append(w.eKind, ev.Kind), append(w.eData, clean(string(ev.Data)))
		}
	}
	if err := w.send(ctx, tx); err != nil {
		return 0, err
	}
	return added, tx.Commit(ctx)
}

// addImported adds what a new imported message brings besides its row and
// events: its recipients, words, addresses, raw body and reports to Odoo.
func (w *writes) addImported(d *store.Dump) {
	r := &d.Row
	for _, rc := range r.Rcpts {
		rc.Dirty = true
	}
	w.add(&plan{row: r, isNew: true})
	if d.Body != nil {
		w.bKey, w.bFinal, w.bSize, w.bData = append(w.bKey, r.Key), append(w.bFinal, d.BodyFinal),
			append(w.bSize, d.BodySize), append(w.bData, d.Body)
	}
	if d.Unsubscribe != "" {
		w.uKey, w.uURL = append(w.uKey, r.Key), append(w.uURL, clean(d.Unsubscribe))
	}
	if d.Feedback != (store.FeedbackCounts{}) {
		w.feedback(r.Key, d.Feedback)
	}
}

// ImportStats sets the per-minute counters a migrated store brought, as
// those of origin: run again with the same origin, the counts are the
// same.
func (s *Store) ImportStats(ctx context.Context, origin string, c store.StatCounts) error {
	if len(c) == 0 {
		return nil
	}
	return upsertStats(ctx, s.db, c, origin, true)
}
