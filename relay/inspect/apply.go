package inspect

import (
	"database/sql"
	"errors"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// apply records one relay event; the rules are store.Row's.
func (w *writer) apply(en *store.Entry) error {
	e := &en.Ev
	switch e.Event {
	case trafficlog.Aborted:
		return nil // nothing was queued: counted by the metrics, not stored
	case trafficlog.Feedback:
		return w.applyFeedback(e)
	case trafficlog.Refused:
		return w.applyRefused(e)
	}
	if e.ID == "" {
		return nil
	}
	m, err := w.load("byID", e.ID)
	if err != nil {
		return err
	}
	if m == nil {
		m = w.create(e)
	}
	if err := w.loadRcpts(m); err != nil {
		return err
	}
	if e.Event == trafficlog.Received && en.Body != nil {
		m.Attachments = en.Attachments
	}
	ev, err := m.Apply(e, w.stats)
	if err != nil {
		return err
	}
	if err := w.indexNew(m); err != nil {
		return err
	}
	if err := w.event(m.Key, ev); err != nil {
		return err
	}
	if err := w.settle(m, e.Time.UnixMilli()); err != nil {
		return err
	}
	if e.Event == trafficlog.Received && e.Unsubscribe != "" {
		if _, err := w.st["feedbackURL"].ExecContext(w.ctx, m.Key, e.Unsubscribe); err != nil {
			return err
		}
	}
	if en.Body != nil && e.Event == trafficlog.Received {
		_, err = w.st["putBody"].ExecContext(w.ctx, m.Key, nullInt(m.FinalAt), len(e.Raw), en.Body)
	}
	return err
}

// applyRefused stores a refusal as a message of its own.
func (w *writer) applyRefused(e *trafficlog.Event) error {
	if e.ID != "" {
		if m, err := w.load("byID", e.ID); err != nil || m != nil {
			e.ID = "" // a refusal of a message the store knows: keep both
		}
	}
	r, ev := store.NewRefusal(e, w.newKey(store.ReceivedMS(e.ID, e.Time)), w.stats)
	m := &row{Row: *r, rcptsLoaded: true}
	w.cache.put(m)
	if err := w.insertRow(m); err != nil {
		return err
	}
	if err := w.writeRcpts(m, m.UpdatedAt); err != nil {
		return err
	}
	return w.event(m.Key, ev)
}

// create starts a message from the first event seen for it. It is
// inserted by flushRows at the end of the batch, usually with its delivery
// outcome already: one insert instead of insert + update.
func (w *writer) create(e *trafficlog.Event) *row {
	m := &row{Row: *store.NewRow(e, w.newKey(store.ReceivedMS(e.ID, e.Time)), w.stats), rcptsLoaded: true, pending: true}
	w.cache.put(m)
	w.dirty[m.Key] = m
	return m
}

// insertRow inserts a message row and indexes it.
func (w *writer) insertRow(m *row) error {
	if _, err := w.st["insertMsg"].ExecContext(w.ctx, m.values()...); err != nil {
		return err
	}
	m.pending = false
	return w.index(m, false)
}

// indexNew indexes the address keys the events added (the ids the
// upstream gave).
func (w *writer) indexNew(m *row) error {
	for _, k := range m.NewKeys {
		if _, err := w.st["insertAddr"].ExecContext(w.ctx, k, m.Key); err != nil {
			return err
		}
	}
	m.NewKeys = nil
	return nil
}

// index adds a message's addresses and text to the search indexes; with
// reindex, the text it had is replaced (its received event came after an
// earlier one created it).
func (w *writer) index(m *row, reindex bool) error {
	for _, a := range m.AddrKeys() {
		if _, err := w.st["insertAddr"].ExecContext(w.ctx, a, m.Key); err != nil {
			return err
		}
	}
	if reindex {
		if _, err := w.st["deleteFTS"].ExecContext(w.ctx, m.Key); err != nil {
			return err
		}
	}
	subj, addrs, ids := m.SearchText()
	_, err := w.st["insertFTS"].ExecContext(w.ctx, m.Key, subj, addrs, ids)
	return err
}

func (w *writer) load(stmt string, arg any) (*row, error) {
	if id, ok := arg.(string); ok && stmt == "byID" {
		if m := w.cache.get(id); m != nil {
			return m, nil
		}
	}
	m, err := scanRow(w.st[stmt].QueryRowContext(w.ctx, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c := w.cache.get(m.ID); c != nil {
		return c, nil
	}
	w.cache.put(m)
	return m, nil
}

func (w *writer) loadRcpts(m *row) error {
	if m.rcptsLoaded {
		return nil
	}
	rows, err := w.st["rcpts"].QueryContext(w.ctx, m.Key)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r := &store.Rcpt{}
		if err := rows.Scan(&r.Addr, &r.State, &r.Reply, &r.MailjetID, &r.MailjetUUID); err != nil {
			return err
		}
		m.Rcpts = append(m.Rcpts, r)
	}
	m.rcptsLoaded = true
	return rows.Err()
}

func (w *writer) writeRcpts(m *row, ms int64) error {
	for _, r := range m.Rcpts {
		if !r.Dirty {
			continue
		}
		if _, err := w.st["putRcpt"].ExecContext(w.ctx, m.Key, r.Addr, r.State, r.Reply,
			nullInt(r.MailjetID), nullString(r.MailjetUUID), ms); err != nil {
			return err
		}
		r.Dirty = false
	}
	return nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// settle derives the message state and marks the row for writing at the
// end of the batch (flushRows), so that the several events of one message
// in a batch cost one write of its row and recipients.
func (w *writer) settle(m *row, ms int64) error {
	if m.Settle(ms, w.stats) {
		if _, err := w.st["finalBody"].ExecContext(w.ctx, ms, m.Key); err != nil {
			return err
		}
	}
	w.dirty[m.Key] = m
	return nil
}

// flushRows writes the rows settle marked.
func (w *writer) flushRows() error {
	for k, m := range w.dirty {
		if err := w.writeRcpts(m, m.UpdatedAt); err != nil {
			return err
		}
		var err error
		switch {
		case m.pending:
			err = w.insertRow(m)
		case m.Full:
			_, err = w.st["updateMsg"].ExecContext(w.ctx, m.updateValues()...)
			if err == nil {
				err = w.index(m, true)
			}
		default:
			_, err = w.st["updateState"].ExecContext(w.ctx, m.stateValues()...)
		}
		if err != nil {
			return err
		}
		m.Full = false
		delete(w.dirty, k)
	}
	return nil
}

func (w *writer) event(key int64, ev store.StoredEvent) error {
	w.seq++
	_, err := w.st["insertEvent"].ExecContext(w.ctx, key, w.seq, ev.At.UnixMilli(), ev.Kind, ev.Data)
	return err
}

// applyMailjet joins a Mailjet event to its message (by CustomID, then
// MessageID, then Message_GUID) and records it.
func (w *writer) applyMailjet(ev *webhook.Event) error {
	store.PrepareMailjet(ev, w.s.opts.Now())
	var m *row
	var err error
	if ev.CustomID != "" {
		if m, err = w.load("byID", ev.CustomID); err != nil {
			return err
		}
	}
	if m == nil && len(w.dirty) > 0 {
		if err := w.flushRows(); err != nil { // the joins below read rcpts
			return err
		}
	}
	for _, j := range []struct {
		stmt string
		arg  any
		ok   bool
	}{{"byMJID", ev.MessageID, ev.MessageID != 0}, {"byMJUUID", ev.MessageUUID, ev.MessageUUID != ""}} {
		if m != nil || !j.ok {
			continue
		}
		var key int64
		switch err := w.st[j.stmt].QueryRowContext(w.ctx, j.arg).Scan(&key); {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return err
		}
		if m, err = w.load("byKey", key); err != nil {
			return err
		}
	}
	if m == nil {
		w.unjoined++
		w.s.log.Debug("Mailjet event for a message the store does not know", "event", ev.Event,
			"custom_id", ev.CustomID, "mailjet_id", ev.MessageID)
		store.CountUnjoined(ev, w.stats)
		return nil
	}
	if err := w.loadRcpts(m); err != nil {
		return err
	}
	if err := w.event(m.Key, m.ApplyMailjet(ev, w.stats)); err != nil {
		return err
	}
	return w.settle(m, ev.Time.UnixMilli())
}
