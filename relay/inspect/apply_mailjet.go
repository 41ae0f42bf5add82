package inspect

import (
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/store"
)

// mailjetWhy is a Mailjet event's reason label (store.Summary.Why).
func mailjetWhy(ev *webhook.Event) string {
	if r := ev.Reason(); r != "" {
		return r
	}
	return ev.Event
}

// applyMailjet joins a Mailjet event to its message (by CustomID, then
// MessageID, then Message_GUID) and records it.
func (w *writer) applyMailjet(ev *webhook.Event) error {
	if ev.Time.IsZero() {
		ev.Time = w.s.opts.Now()
	}
	ev.MessageUUID = strings.ToLower(ev.MessageUUID)
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
		// Webhooks are per account: other senders' events arrive here too.
		w.unjoined++
		w.s.log.Debug("Mailjet event for a message the store does not know", "event", ev.Event,
			"custom_id", ev.CustomID, "mailjet_id", ev.MessageID)
		w.stat(ev.Time, "mj_unjoined", "", ev.Event, 0)
		return nil
	}
	if err := w.loadRcpts(m); err != nil {
		return err
	}
	r := m.findRcpt(ev.Email)
	if r == nil && ev.MessageID != 0 {
		for _, x := range m.rcpts {
			if x.mjID == ev.MessageID {
				r = x
			}
		}
	}
	if r == nil && len(m.rcpts) == 1 {
		r = m.rcpts[0]
	}
	if r != nil {
		if ev.MessageID != 0 && r.mjID == 0 {
			r.mjID, r.dirty = ev.MessageID, true
		}
		if ev.MessageUUID != "" && r.mjUUID == "" {
			r.mjUUID, r.dirty = ev.MessageUUID, true
		}
		next := mailjetState(ev.Event)
		if next == "" && (ev.Event == "open" || ev.Event == "click") && r.state == store.StateSent {
			next = store.StateDelivered
		}
		if next != "" && mailjetMayReplace(r.state, next) {
			r.state, r.dirty = next, true
			if rep := ev.Reply(); rep != "" {
				r.reply = rep
			}
			if store.Problem(next) {
				m.why, m.reply = mailjetWhy(ev), ev.Reply()
			}
		}
	}
	if ev.MessageID != 0 {
		m.addMailjetID(strconv.FormatInt(ev.MessageID, 10))
	}
	stored := *ev
	stored.Event, stored.Time = "", time.Time{}
	if stored.CustomID == m.id {
		stored.CustomID = ""
	}
	data, _ := json.Marshal(stored)
	if err := w.event(m.key, ev.Time, "mj_"+ev.Event, data); err != nil {
		return err
	}
	reason := ev.Reason()
	if store.Problem(mailjetState(ev.Event)) {
		reason = mailjetWhy(ev) // the label Filter.Reason finds them by
	}
	w.stat(ev.Time, "mj_"+ev.Event, m.class, reason, 0)
	return w.settle(m, ev.Time.UnixMilli())
}
