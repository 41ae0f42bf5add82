package inspect

import (
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mjrelay/mjrelay/mailjet"
	"strconv"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// apply records one relay event.
func (w *writer) apply(en *entry) error {
	e := &en.ev
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
		if m, err = w.create(e, store.StateQueued); err != nil {
			return err
		}
	}
	ms := e.Time.UnixMilli()
	switch e.Event {
	case trafficlog.Received:
		m.full = true
		m.receivedAt = msFromID(e.ID, e.Time)
		m.client, m.user, m.helo, m.tls = e.Client, e.User, e.Helo, e.TLS
		m.verdict = e.Verdict
		if e.Class != "" {
			m.class, m.classRule = e.Class, e.ClassRule
		}
		m.headerFrom, m.subject, m.messageID, m.size = e.HeaderFrom, e.Subject, e.MessageID, e.Size
		if err := w.loadRcpts(m); err != nil {
			return err
		}
		for _, t := range e.To {
			m.rcpt(t, store.StateQueued)
		}
		if e.Unsubscribe != "" {
			if _, err := w.st["feedbackURL"].ExecContext(w.ctx, m.key, e.Unsubscribe); err != nil {
				return err
			}
		}
		if en.body != nil {
			m.attachments = en.attachments
			if _, err := w.st["putBody"].ExecContext(w.ctx, m.key, nullInt(m.finalAt), len(e.Raw), en.body); err != nil {
				return err
			}
		}
	case trafficlog.Attempt:
		if err := w.loadRcpts(m); err != nil {
			return err
		}
		m.attempts = max(m.attempts, e.Attempt)
		m.transport, m.upstream, m.reply = e.Transport, e.Upstream, e.Reply.String()
		if err := w.noteUpstream(m, e.UpstreamID); err != nil {
			return err
		}
		for _, rr := range e.Rcpts {
			r := m.rcpt(rr.Rcpt, store.StateQueued)
			if rr.MessageID != 0 && rr.MessageID != r.mjID {
				r.mjID, r.dirty = rr.MessageID, true
				m.addMailjetID(strconv.FormatInt(rr.MessageID, 10))
			}
			if u := strings.ToLower(rr.MessageUUID); u != "" && u != r.mjUUID {
				r.mjUUID, r.dirty = u, true
			}
		}
		w.stat(e.Time, "attempt", m.class, e.Transport, e.DurationMS)
	case trafficlog.Delivered, trafficlog.Sandboxed, trafficlog.Failed, trafficlog.Deferred:
		state := map[trafficlog.Kind]store.State{trafficlog.Delivered: store.StateSent, trafficlog.Sandboxed: store.StateSandboxed,
			trafficlog.Failed: store.StateFailed, trafficlog.Deferred: store.StateDeferred}[e.Event]
		if err := w.setRcpts(m, e.To, state, e.Reply.String(), false); err != nil {
			return err
		}
		if e.Transport != "" {
			m.transport, m.upstream = e.Transport, e.Upstream
		}
		m.attempts = max(m.attempts, e.Attempt)
		m.reply = e.Reply.String()
		if err := w.noteUpstream(m, e.UpstreamID); err != nil {
			return err
		}
		reason := ""
		switch e.Event {
		case trafficlog.Failed:
			m.reason = e.Reason
			reason = failReason(e.Reply, e.Reason)
			m.why = reason
		case trafficlog.Deferred:
			reason = replyCode(e.Reply)
			m.why = reason
		case trafficlog.Delivered:
			// Sandboxed mail never reached Mailjet: no latency to its
			// acceptance.
			if m.latencyMS == 0 && e.DurationMS > 0 {
				m.latencyMS = e.DurationMS
			}
		}
		w.stat(e.Time, string(e.Event), m.class, reason, latencyOf(e))
		w.rcptStat(e, m)
	case trafficlog.Deleted:
		if err := w.setRcpts(m, e.To, store.StateDeleted, "", true); err != nil {
			return err
		}
		m.reason = e.Reason
		m.why = clip(e.Reason, 60)
		w.stat(e.Time, string(e.Event), m.class, "", 0)
	default:
		return fmt.Errorf("unknown event %q", e.Event)
	}
	if err := w.event(m.key, e.Time, string(e.Event), eventData(e, m.rcptTo)); err != nil {
		return err
	}
	return w.settle(m, ms)
}

// latencyOf is the time from receipt to Mailjet's acceptance.
func latencyOf(e *trafficlog.Event) float64 {
	if e.Event == trafficlog.Delivered {
		return e.DurationMS
	}
	return 0
}

// rcptKinds are the funnel's counters of recipients, by outcome.
var rcptKinds = map[trafficlog.Kind]string{trafficlog.Received: "rcpt_received", trafficlog.Delivered: "rcpt_accepted",
	trafficlog.Failed: "rcpt_failed", trafficlog.Sandboxed: "rcpt_sandboxed"}

// rcptStat counts an event's recipients for the funnel.
func (w *writer) rcptStat(e *trafficlog.Event, m *row) {
	kind, ok := rcptKinds[e.Event]
	if !ok {
		return
	}
	n := len(e.To)
	if n == 0 {
		n = len(m.rcpts)
	}
	w.statN(e.Time, kind, m.class, "", 0, max(n, 1))
}

// noteUpstream keeps an id the upstream gave the message, and indexes it
// for search.
func (w *writer) noteUpstream(m *row, id string) error {
	if !m.addUpstreamID(id) {
		return nil
	}
	_, err := w.st["insertAddr"].ExecContext(w.ctx, upstreamKey(id), m.key)
	return err
}

// applyRefused stores a refusal as a message of its own.
func (w *writer) applyRefused(e *trafficlog.Event) error {
	if e.ID != "" {
		if m, err := w.load("byID", e.ID); err != nil || m != nil {
			e.ID = "" // a refusal of a message the store knows: keep both
		}
	}
	m, err := w.create(e, store.StateRefused)
	if err != nil {
		return err
	}
	w.statN(e.Time, "refused", "", m.why, 0, max(e.Count, 1))
	return w.event(m.key, e.Time, string(e.Event), eventData(e, m.rcptTo))
}

// create inserts a message from the first event seen for it.
func (w *writer) create(e *trafficlog.Event, state store.State) (*row, error) {
	ms := e.Time.UnixMilli()
	recv := msFromID(e.ID, e.Time)
	m := &row{key: w.newKey(recv), id: e.ID, receivedAt: recv, updatedAt: ms, state: state,
		class: e.Class, classRule: e.ClassRule, mailFrom: e.From, rcptTo: strings.Join(e.To, "\n"),
		headerFrom: e.HeaderFrom, subject: e.Subject, messageID: e.MessageID, size: e.Size,
		user: e.User, client: e.Client, helo: e.Helo, tls: e.TLS, verdict: e.Verdict, reason: e.Reason,
		stage: e.Stage, reply: e.Reply.String(), rcptsLoaded: true}
	if state == store.StateRefused {
		m.why = clip(e.Stage+": "+e.Reason, 60)
	}
	if m.id == "" {
		m.id = fmt.Sprintf("r%016x", m.key)
	}
	if state == store.StateRefused {
		m.finalAt = ms
	}
	w.cache.put(m)
	for _, t := range e.To {
		m.rcpt(t, state)
	}
	if state != store.StateRefused {
		// Inserted by flushRows at the end of the batch, usually with its
		// delivery outcome already: one insert instead of insert + update.
		m.pending = true
		w.dirty[m.key] = m
		w.stat(e.Time, "received", m.class, "", 0)
		ev := *e
		ev.Event = trafficlog.Received
		w.rcptStat(&ev, m)
		return m, nil
	}
	if err := w.insertRow(m); err != nil {
		return nil, err
	}
	if err := w.writeRcpts(m, ms); err != nil {
		return nil, err
	}
	return m, nil
}

// insertRow inserts a message row and indexes it.
func (w *writer) insertRow(m *row) error {
	if _, err := w.st["insertMsg"].ExecContext(w.ctx, m.values()...); err != nil {
		return err
	}
	m.pending = false
	return w.index(m, false)
}

// index adds a message's addresses and text to the search indexes; with
// reindex, the text it had is replaced (its received event came after an
// earlier one created it).
func (w *writer) index(m *row, reindex bool) error {
	for _, a := range m.addrKeys() {
		if _, err := w.st["insertAddr"].ExecContext(w.ctx, a, m.key); err != nil {
			return err
		}
	}
	if reindex {
		if _, err := w.st["deleteFTS"].ExecContext(w.ctx, m.key); err != nil {
			return err
		}
	}
	subj, addrs, ids := m.ftsText()
	_, err := w.st["insertFTS"].ExecContext(w.ctx, m.key, subj, addrs, ids)
	return err
}

// msFromID reads the receive time from a queue id (12 hex digits of unix
// milliseconds first), or falls back to t.
func msFromID(id string, t time.Time) int64 {
	if len(id) >= 16 && len(id) <= 32 {
		var b [8]byte
		if _, err := hex.Decode(b[2:], []byte(id[:12])); err == nil {
			ms := int64(b[2])<<40 | int64(b[3])<<32 | int64(b[4])<<24 | int64(b[5])<<16 | int64(b[6])<<8 | int64(b[7])
			if d := ms - t.UnixMilli(); d > -400*24*3600*1000 && d < 3600*1000 {
				return ms
			}
		}
	}
	return t.UnixMilli()
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
	if c := w.cache.get(m.id); c != nil {
		return c, nil
	}
	w.cache.put(m)
	return m, nil
}

func (w *writer) loadRcpts(m *row) error {
	if m.rcptsLoaded {
		return nil
	}
	rows, err := w.st["rcpts"].QueryContext(w.ctx, m.key)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r := &rcptRow{}
		if err := rows.Scan(&r.addr, &r.state, &r.reply, &r.mjID, &r.mjUUID); err != nil {
			return err
		}
		m.rcpts = append(m.rcpts, r)
	}
	m.rcptsLoaded = true
	return rows.Err()
}

// rcpt returns the recipient addr, adding it with state if it is new.
func (m *row) rcpt(addr string, state store.State) *rcptRow {
	if r := m.findRcpt(addr); r != nil {
		return r
	}
	r := &rcptRow{addr: addr, state: state, dirty: true}
	m.rcpts = append(m.rcpts, r)
	return r
}

func (m *row) findRcpt(addr string) *rcptRow {
	for _, r := range m.rcpts {
		if strings.EqualFold(r.addr, addr) {
			return r
		}
	}
	return nil
}

// setRcpts moves recipients (all when to is empty; only pending ones when
// pendingOnly) to state.
func (w *writer) setRcpts(m *row, to []string, state store.State, reply string, pendingOnly bool) error {
	if err := w.loadRcpts(m); err != nil {
		return err
	}
	var targets []*rcptRow
	if len(to) == 0 {
		targets = m.rcpts
	}
	for _, t := range to {
		targets = append(targets, m.rcpt(t, state))
	}
	for _, r := range targets {
		if (pendingOnly && !store.Pending(r.state)) || !relayMayReplace(r.state) {
			continue
		}
		r.state, r.dirty = state, true
		if reply != "" {
			r.reply = reply
		}
	}
	return nil
}

func (w *writer) writeRcpts(m *row, ms int64) error {
	for _, r := range m.rcpts {
		if !r.dirty {
			continue
		}
		if _, err := w.st["putRcpt"].ExecContext(w.ctx, m.key, r.addr, r.state, r.reply,
			nullInt(r.mjID), nullString(r.mjUUID), ms); err != nil {
			return err
		}
		r.dirty = false
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
	if m.rcptsLoaded {
		m.state = messageState(m.rcpts, m.state)
	}
	if !store.Problem(m.state) {
		m.why = ""
	}
	m.updatedAt = ms
	if !store.Pending(m.state) && m.finalAt == 0 {
		m.finalAt = ms
		if _, err := w.st["finalBody"].ExecContext(w.ctx, ms, m.key); err != nil {
			return err
		}
		w.stat(time.UnixMilli(ms), "final", m.class, "", 0)
	}
	w.dirty[m.key] = m
	return nil
}

// flushRows writes the rows settle marked.
func (w *writer) flushRows() error {
	for k, m := range w.dirty {
		if err := w.writeRcpts(m, m.updatedAt); err != nil {
			return err
		}
		var err error
		switch {
		case m.pending:
			err = w.insertRow(m)
		case m.full:
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
		m.full = false
		delete(w.dirty, k)
	}
	return nil
}

func (w *writer) event(key int64, t time.Time, kind string, data []byte) error {
	w.seq++
	_, err := w.st["insertEvent"].ExecContext(w.ctx, key, w.seq, t.UnixMilli(), kind, data)
	return err
}

// storedEvent is what the events table keeps of a relay event: what the
// message row does not already hold.
type storedEvent struct {
	Client     string                  `json:"client,omitempty"`
	User       string                  `json:"user,omitempty"`
	Helo       string                  `json:"helo,omitempty"`
	TLS        bool                    `json:"tls,omitempty"`
	Class      string                  `json:"class,omitempty"`
	ClassRule  string                  `json:"class_rule,omitempty"`
	Verdict    string                  `json:"verdict,omitempty"`
	Stage      string                  `json:"stage,omitempty"`
	Size       int64                   `json:"size,omitempty"`
	To         []string                `json:"to,omitempty"` // omitted: all recipients
	Reply      mailjet.Reply           `json:"reply,omitzero"`
	Count      int                     `json:"count,omitempty"` // refusals a refused event stands for
	Reason     string                  `json:"reason,omitempty"`
	Transport  string                  `json:"transport,omitempty"`
	Upstream   string                  `json:"upstream,omitempty"`
	UpstreamID string                  `json:"upstream_id,omitempty"`
	Attempt    int                     `json:"attempt,omitempty"`
	Rcpts      []trafficlog.RcptResult `json:"rcpts,omitempty"`
	DurationMS float64                 `json:"duration_ms,omitempty"`
	Next       time.Time               `json:"next,omitzero"`
	Action     string                  `json:"action,omitempty"` // feedback
	Result     string                  `json:"result,omitempty"`
	Answer     string                  `json:"answer,omitempty"`
}

func eventData(e *trafficlog.Event, allTo string) []byte {
	d := storedEvent{Verdict: e.Verdict, Reply: e.Reply, Reason: e.Reason, Transport: e.Transport, Upstream: e.Upstream,
		UpstreamID: e.UpstreamID, Attempt: e.Attempt, Rcpts: e.Rcpts, DurationMS: e.DurationMS, Next: e.Next,
		Action: e.Action, Result: e.Result, Answer: e.Answer}
	switch e.Event {
	case trafficlog.Received, trafficlog.Refused:
		d.Client, d.User, d.Helo, d.TLS, d.Class, d.ClassRule = e.Client, e.User, e.Helo, e.TLS, e.Class, e.ClassRule
		if e.Event == trafficlog.Refused {
			d.Stage, d.Size, d.Count = e.Stage, e.Size, e.Count
		}
	case trafficlog.Attempt:
	default:
		if strings.Join(e.To, "\n") != allTo {
			d.To = e.To
		}
	}
	b, _ := json.Marshal(d)
	return b
}

// event rebuilds the trafficlog event of a stored one.
func (d *storedEvent) event(kind trafficlog.Kind, t time.Time, allTo []string) trafficlog.Event {
	e := trafficlog.Event{Time: t, Event: kind, Client: d.Client, User: d.User, Helo: d.Helo, TLS: d.TLS,
		Class: d.Class, ClassRule: d.ClassRule, Verdict: d.Verdict, Stage: d.Stage, Size: d.Size, To: d.To,
		Reply: d.Reply, Count: d.Count, Reason: d.Reason, Transport: d.Transport, Upstream: d.Upstream, UpstreamID: d.UpstreamID,
		Attempt: d.Attempt, Rcpts: d.Rcpts, DurationMS: d.DurationMS, Next: d.Next,
		Action: d.Action, Result: d.Result, Answer: d.Answer}
	if e.To == nil && kind != trafficlog.Attempt {
		e.To = allTo
	}
	return e
}
