package store

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Row is a message as the stores keep it: its columns and its recipients.
// A store's writer loads a message's Row (or starts one with NewRow or
// NewRefusal), applies the events recorded for it (Apply, ApplyMailjet),
// settles its state (Settle) and writes back what changed, so that every
// backend derives the same state from the same events.
type Row struct {
	// Key orders the messages by receive time (see KeyAt); the page
	// cursor is a key.
	Key        int64
	ID         string
	ReceivedAt int64 // unix ms
	UpdatedAt  int64
	FinalAt    int64 // 0 while the message is queued
	State      State
	Class      string
	ClassRule  string
	MailFrom   string
	RcptTo     string // newline-separated
	HeaderFrom string
	Subject    string
	MessageID  string
	Size       int64
	User       string
	Client     string
	Helo       string
	TLS        bool
	Verdict    string
	Reason     string
	Stage      string
	Reply      string
	Transport  string
	Upstream   string
	Attempts   int
	MailjetIDs string // space-separated
	LatencyMS  float64
	// Why is the reason label of a message in a problem state
	// (Summary.Why).
	Why string
	// UpstreamIDs are the ids the upstream gave it (space-separated).
	UpstreamIDs string
	Attachments int
	// Rcpts are the recipients, which the writer loads before applying
	// an event.
	Rcpts []*Rcpt
	// Full marks a row whose envelope columns changed (its received event
	// came after another one created it): the writer then writes every
	// column and indexes the row again, else only the delivery columns.
	Full bool
	// NewKeys are address keys (AddrKeys) the events added, for the
	// writer to index (and clear).
	NewKeys []string
}

// Rcpt is one recipient of a Row.
type Rcpt struct {
	Addr, Reply string
	State       State
	MailjetID   int64
	MailjetUUID string
	// Dirty marks a recipient changed since it was loaded or written.
	Dirty bool
}

// KeyPerMS: a message key is its receive time in unix milliseconds ×
// KeyPerMS plus a sequence number, so that ordering by key is ordering by
// time and a time range is a key range.
const KeyPerMS = 1_000_000

// KeyAt is the first key of the millisecond of t.
func KeyAt(t time.Time) int64 { return t.UnixMilli() * KeyPerMS }

// Counter receives the per-minute counts an event adds (n of a kind, in
// class, for reason; latency is a delivery's, 0 otherwise).
type Counter interface {
	Count(t time.Time, kind, class, reason string, latency float64, n int)
}

// StoredEvent is one line of a message's timeline as a store keeps it:
// the relay's or Mailjet's event kind ("mj_" + Mailjet's), its time and
// what the message row does not already hold.
type StoredEvent struct {
	At   time.Time
	Kind string
	Data []byte
}

// RefusalID is the id of a refusal the relay gave no queue id.
func RefusalID(key int64) string { return fmt.Sprintf("r%016x", key) }

// ReceivedMS reads the receive time from a queue id (12 hex digits of unix
// milliseconds first), or falls back to t.
func ReceivedMS(id string, t time.Time) int64 {
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

// NewRow starts the row of a message from the first event seen for it
// (not a refusal: see NewRefusal); key is the store's new key for a message
// received at ReceivedMS(e.ID, e.Time).
func NewRow(e *trafficlog.Event, key int64, c Counter) *Row {
	r := newRow(e, key, StateQueued)
	c.Count(e.Time, "received", r.Class, "", 0, 1)
	recv := *e
	recv.Event = trafficlog.Received
	r.countRcpts(&recv, c)
	return r
}

// NewRefusal is a refusal as a message of its own, final at once, and its
// timeline event; its id is e.ID, or RefusalID(key) without one.
func NewRefusal(e *trafficlog.Event, key int64, c Counter) (*Row, StoredEvent) {
	r := newRow(e, key, StateRefused)
	r.FinalAt, r.Why = r.UpdatedAt, Clip(e.Stage+": "+e.Reason, 60)
	c.Count(e.Time, "refused", "", r.Why, 0, max(e.Count, 1))
	return r, StoredEvent{At: e.Time, Kind: string(e.Event), Data: eventData(e, r.RcptTo)}
}

func newRow(e *trafficlog.Event, key int64, state State) *Row {
	r := &Row{Key: key, ID: e.ID, ReceivedAt: ReceivedMS(e.ID, e.Time), UpdatedAt: e.Time.UnixMilli(), State: state,
		Class: e.Class, ClassRule: e.ClassRule, MailFrom: e.From, RcptTo: strings.Join(e.To, "\n"),
		HeaderFrom: e.HeaderFrom, Subject: e.Subject, MessageID: e.MessageID, Size: e.Size,
		User: e.User, Client: e.Client, Helo: e.Helo, TLS: e.TLS, Verdict: e.Verdict, Reason: e.Reason,
		Stage: e.Stage, Reply: e.Reply.String()}
	if r.ID == "" {
		r.ID = RefusalID(key)
	}
	for _, t := range e.To {
		r.Rcpt(t, state)
	}
	return r
}

// Apply applies a relay event other than a refusal to the message (its
// recipients loaded) and returns it as the timeline keeps it. Settle
// follows.
func (r *Row) Apply(e *trafficlog.Event, c Counter) (StoredEvent, error) {
	switch e.Event {
	case trafficlog.Received:
		r.Full = true
		r.ReceivedAt = ReceivedMS(e.ID, e.Time)
		r.Client, r.User, r.Helo, r.TLS = e.Client, e.User, e.Helo, e.TLS
		r.Verdict = e.Verdict
		if e.Class != "" {
			r.Class, r.ClassRule = e.Class, e.ClassRule
		}
		r.HeaderFrom, r.Subject, r.MessageID, r.Size = e.HeaderFrom, e.Subject, e.MessageID, e.Size
		for _, t := range e.To {
			r.Rcpt(t, StateQueued)
		}
	case trafficlog.Attempt:
		r.Attempts = max(r.Attempts, e.Attempt)
		r.Transport, r.Upstream, r.Reply = e.Transport, e.Upstream, e.Reply.String()
		r.AddUpstreamID(e.UpstreamID)
		for _, rr := range e.Rcpts {
			rc := r.Rcpt(rr.Rcpt, StateQueued)
			if rr.MessageID != 0 && rr.MessageID != rc.MailjetID {
				rc.MailjetID, rc.Dirty = rr.MessageID, true
				r.AddMailjetID(strconv.FormatInt(rr.MessageID, 10))
			}
			if u := strings.ToLower(rr.MessageUUID); u != "" && u != rc.MailjetUUID {
				rc.MailjetUUID, rc.Dirty = u, true
			}
		}
		c.Count(e.Time, "attempt", r.Class, e.Transport, e.DurationMS, 1)
	case trafficlog.Delivered, trafficlog.Sandboxed, trafficlog.Failed, trafficlog.Deferred:
		state := map[trafficlog.Kind]State{trafficlog.Delivered: StateSent, trafficlog.Sandboxed: StateSandboxed,
			trafficlog.Failed: StateFailed, trafficlog.Deferred: StateDeferred}[e.Event]
		r.setRcpts(e.To, state, e.Reply.String(), false)
		if e.Transport != "" {
			r.Transport, r.Upstream = e.Transport, e.Upstream
		}
		r.Attempts = max(r.Attempts, e.Attempt)
		r.Reply = e.Reply.String()
		r.AddUpstreamID(e.UpstreamID)
		reason, latency := "", 0.0
		switch e.Event {
		case trafficlog.Failed:
			r.Reason = e.Reason
			reason = FailReason(e.Reply, e.Reason)
			r.Why = reason
		case trafficlog.Deferred:
			reason = ReplyCode(e.Reply)
			r.Why = reason
		case trafficlog.Delivered:
			// Sandboxed mail never reached Mailjet: no latency to its
			// acceptance.
			if r.LatencyMS == 0 && e.DurationMS > 0 {
				r.LatencyMS = e.DurationMS
			}
			latency = e.DurationMS
		}
		c.Count(e.Time, string(e.Event), r.Class, reason, latency, 1)
		r.countRcpts(e, c)
	case trafficlog.Deleted:
		r.setRcpts(e.To, StateDeleted, "", true)
		r.Reason = e.Reason
		r.Why = Clip(e.Reason, 60)
		c.Count(e.Time, string(e.Event), r.Class, "", 0, 1)
	default:
		return StoredEvent{}, fmt.Errorf("unknown event %q", e.Event)
	}
	return StoredEvent{At: e.Time, Kind: string(e.Event), Data: eventData(e, r.RcptTo)}, nil
}

// rcptKinds are the funnel's counters of recipients, by outcome.
var rcptKinds = map[trafficlog.Kind]string{trafficlog.Received: "rcpt_received", trafficlog.Delivered: "rcpt_accepted",
	trafficlog.Failed: "rcpt_failed", trafficlog.Sandboxed: "rcpt_sandboxed"}

// countRcpts counts an event's recipients for the funnel (Funnel).
func (r *Row) countRcpts(e *trafficlog.Event, c Counter) {
	kind, ok := rcptKinds[e.Event]
	if !ok {
		return
	}
	n := len(e.To)
	if n == 0 {
		n = len(r.Rcpts)
	}
	c.Count(e.Time, kind, r.Class, "", 0, max(n, 1))
}

// PrepareMailjet gives a Mailjet event without a time the time now and
// lower-cases its UUID, before it is joined (by CustomID, then MessageID,
// then MessageUUID) and applied.
func PrepareMailjet(ev *webhook.Event, now time.Time) {
	if ev.Time.IsZero() {
		ev.Time = now
	}
	ev.MessageUUID = strings.ToLower(ev.MessageUUID)
}

// CountUnjoined counts a Mailjet event of a message the store does not
// know (webhooks are per account: other senders' events arrive too).
func CountUnjoined(ev *webhook.Event, c Counter) {
	c.Count(ev.Time, "mj_unjoined", "", ev.Event, 0, 1)
}

// ApplyMailjet applies a Mailjet event joined to the message (its
// recipients loaded) and returns it as the timeline keeps it. Settle
// follows.
func (r *Row) ApplyMailjet(ev *webhook.Event, c Counter) StoredEvent {
	rc := r.FindRcpt(ev.Email)
	if rc == nil && ev.MessageID != 0 {
		for _, x := range r.Rcpts {
			if x.MailjetID == ev.MessageID {
				rc = x
			}
		}
	}
	if rc == nil && len(r.Rcpts) == 1 {
		rc = r.Rcpts[0]
	}
	if rc != nil {
		if ev.MessageID != 0 && rc.MailjetID == 0 {
			rc.MailjetID, rc.Dirty = ev.MessageID, true
		}
		if ev.MessageUUID != "" && rc.MailjetUUID == "" {
			rc.MailjetUUID, rc.Dirty = ev.MessageUUID, true
		}
		next := MailjetState(ev.Event)
		if next == "" && (ev.Event == "open" || ev.Event == "click") && rc.State == StateSent {
			next = StateDelivered
		}
		if next != "" && MailjetMayReplace(rc.State, next) {
			rc.State, rc.Dirty = next, true
			if rep := ev.Reply(); rep != "" {
				rc.Reply = rep
			}
			if Problem(next) {
				r.Why, r.Reply = MailjetWhy(ev), ev.Reply()
			}
		}
	}
	if ev.MessageID != 0 {
		r.AddMailjetID(strconv.FormatInt(ev.MessageID, 10))
	}
	stored := *ev
	stored.Event, stored.Time = "", time.Time{}
	if stored.CustomID == r.ID {
		stored.CustomID = ""
	}
	data, _ := json.Marshal(stored)
	reason := ev.Reason()
	if Problem(MailjetState(ev.Event)) {
		reason = MailjetWhy(ev) // the label Filter.Reason finds them by
	}
	c.Count(ev.Time, "mj_"+ev.Event, r.Class, reason, 0, 1)
	return StoredEvent{At: ev.Time, Kind: "mj_" + ev.Event, Data: data}
}

// Settle derives the message's state from its recipients' after an event
// at ms; it reports whether the message just left the queue (FinalAt is
// then ms: the time its raw body's keep_bodies starts).
func (r *Row) Settle(ms int64, c Counter) (final bool) {
	r.State = MessageState(r.Rcpts, r.State)
	if !Problem(r.State) {
		r.Why = ""
	}
	r.UpdatedAt = ms
	if Pending(r.State) || r.FinalAt != 0 {
		return false
	}
	r.FinalAt = ms
	c.Count(time.UnixMilli(ms), "final", r.Class, "", 0, 1)
	return true
}

// Rcpt returns the recipient addr, adding it with state if it is new.
func (r *Row) Rcpt(addr string, state State) *Rcpt {
	if rc := r.FindRcpt(addr); rc != nil {
		return rc
	}
	rc := &Rcpt{Addr: addr, State: state, Dirty: true}
	r.Rcpts = append(r.Rcpts, rc)
	return rc
}

// FindRcpt returns the recipient addr (case-insensitive), or nil.
func (r *Row) FindRcpt(addr string) *Rcpt {
	for _, rc := range r.Rcpts {
		if strings.EqualFold(rc.Addr, addr) {
			return rc
		}
	}
	return nil
}

// setRcpts moves recipients (all when to is empty; only pending ones when
// pendingOnly) to state.
func (r *Row) setRcpts(to []string, state State, reply string, pendingOnly bool) {
	var targets []*Rcpt
	if len(to) == 0 {
		targets = r.Rcpts
	}
	for _, t := range to {
		targets = append(targets, r.Rcpt(t, state))
	}
	for _, rc := range targets {
		if (pendingOnly && !Pending(rc.State)) || !RelayMayReplace(rc.State) {
			continue
		}
		rc.State, rc.Dirty = state, true
		if reply != "" {
			rc.Reply = reply
		}
	}
}

// To returns the envelope recipients.
func (r *Row) To() []string {
	if r.RcptTo == "" {
		return []string{}
	}
	return strings.Split(r.RcptTo, "\n")
}

// AddMailjetID adds one of Mailjet's message ids, once.
func (r *Row) AddMailjetID(id string) {
	if id == "" || id == "0" {
		return
	}
	for _, x := range strings.Fields(r.MailjetIDs) {
		if x == id {
			return
		}
	}
	if r.MailjetIDs != "" {
		r.MailjetIDs += " "
	}
	r.MailjetIDs += id
}

// maxUpstreamIDs bounds the ids kept per message (one per attempt that
// got one).
const maxUpstreamIDs = 8

// AddUpstreamID notes an id the upstream gave the message; a new one is
// also a new address key (UpstreamKey).
func (r *Row) AddUpstreamID(id string) {
	id = strings.TrimSpace(id)
	if id == "" || len(id) > 100 || strings.ContainsAny(id, " \t\r\n") {
		return
	}
	ids := strings.Fields(r.UpstreamIDs)
	if len(ids) >= maxUpstreamIDs || slices.Contains(ids, id) {
		return
	}
	r.UpstreamIDs = strings.Join(append(ids, id), " ")
	r.NewKeys = append(r.NewKeys, UpstreamKey(id))
}

// Summary is the row as a list shows it.
func (r *Row) Summary() Summary {
	ids := strings.Fields(r.MailjetIDs)
	if ids == nil {
		ids = []string{}
	}
	return Summary{
		ID: r.ID, ReceivedAt: time.UnixMilli(r.ReceivedAt).UTC(), State: r.State, Class: r.Class,
		From: r.MailFrom, HeaderFrom: r.HeaderFrom, To: r.To(), Subject: r.Subject, MessageID: r.MessageID,
		Size: r.Size, User: r.User, Client: r.Client, Transport: r.Transport, MailjetIDs: ids,
		Attempts: r.Attempts, Reply: r.Reply, Reason: r.Reason, Why: r.Why, Attachments: r.Attachments,
	}
}

// ReadPage reads a page of at most limit messages, newest first, from rows
// of up to limit+1 (each read by scan): Next is the key of the last one
// listed when there are more.
func ReadPage(rows Rows, limit int, scan func(Rows) (*Row, error)) (Page, error) {
	p := Page{Messages: []Summary{}}
	var last int64
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return Page{}, err
		}
		if len(p.Messages) == limit {
			p.Next = strconv.FormatInt(last, 10)
			break
		}
		p.Messages = append(p.Messages, r.Summary())
		last = r.Key
	}
	return p, rows.Err()
}
