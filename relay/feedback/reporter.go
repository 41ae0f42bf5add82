package feedback

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/odoo"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Odoo is what the reporter calls (an *odoo.Client, or a test's).
type Odoo interface {
	ProcessMessage(ctx context.Context, raw []byte) (string, error)
	Blacklist(ctx context.Context, email, reason string) (string, error)
	OneClick(ctx context.Context, url string) (string, error)
}

// Messages is where the reporter finds the message a Mailjet event is
// about (the traffic store).
type Messages interface {
	Get(ctx context.Context, id string) (*store.Message, error)
	List(ctx context.Context, f store.Filter) (store.Page, error)
	Raw(ctx context.Context, id string) (io.Reader, int64, error)
}

// Options configure a Reporter.
type Options struct {
	// Hostname names the relay in DSNs.
	Hostname string
	// BounceAddress is the DSN's To (Odoo's bounce alias); "" uses the
	// original's envelope sender.
	BounceAddress string
	// Report lists what is reported: bounce, blocked, failed, spam, unsub.
	Report []string
	// UnsubBlacklist blacklists an unsubscribed address whose message had
	// no one-click URL.
	UnsubBlacklist bool
	// RetryMin and RetryMax bound the backoff between attempts (defaults
	// 10 s and 10 min); Remember is how long a reported key is kept for
	// de-duplication (default 7 days: Mailjet resends for 24 h).
	RetryMin, RetryMax, Remember time.Duration
	Logger                       *slog.Logger
	Traffic                      trafficlog.Recorder
	Now                          func() time.Time
}

// Reporter turns events into outbox items and sends them to Odoo.
type Reporter struct {
	o    Options
	out  Outbox
	odoo Odoo
	msgs Messages
	log  *slog.Logger
	wake chan struct{}
	on   map[string]bool

	mu         sync.Mutex
	problem    error // the standing Setup error
	since      time.Time
	setupWait  time.Duration
	pauseUntil time.Time
	last       time.Time // the last report Odoo took

	reported, failed, alerts atomic.Uint64
}

// lease is how long a claimed item is held by one sender.
const lease = 5 * time.Minute

// New builds a reporter over an outbox, Odoo, and the store it looks
// messages up in.
func New(o Options, out Outbox, od Odoo, msgs Messages) *Reporter {
	if o.RetryMin <= 0 {
		o.RetryMin = 10 * time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(10*time.Minute, o.RetryMin)
	}
	if o.Remember <= 0 {
		o.Remember = 7 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Traffic == nil {
		o.Traffic = trafficlog.Discard{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Reporter{o: o, out: out, odoo: od, msgs: msgs, log: o.Logger.With("component", "feedback"),
		wake: make(chan struct{}, 1), on: map[string]bool{}}
	for _, k := range o.Report {
		r.on[k] = true
	}
	return r
}

// Status is what the UI, /readyz and the metrics show.
type Status struct {
	// Problem is the standing fault that parks every report (bad login or
	// rights); "" when there is none.
	Problem  string    `json:"problem,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Pending  int       `json:"pending"`
	Oldest   time.Time `json:"oldest,omitzero"`
	Reported uint64    `json:"reported"` // since the start
	Failed   uint64    `json:"failed"`
	Alerts   uint64    `json:"alerts"`
	Last     time.Time `json:"last,omitzero"`
}

// Status returns the reporter's state.
func (r *Reporter) Status(ctx context.Context) Status {
	st, _ := r.out.Stats(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{Since: r.since, Pending: st.Pending, Oldest: st.Oldest, Reported: r.reported.Load(),
		Failed: r.failed.Load(), Alerts: r.alerts.Load(), Last: r.last}
	if r.problem != nil {
		s.Problem = r.problem.Error()
	}
	return s
}

func (r *Reporter) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// add writes items to the outbox and records the new ones.
func (r *Reporter) add(ctx context.Context, items []Item) error {
	if len(items) == 0 {
		return nil
	}
	added, err := r.out.Add(ctx, items)
	if err != nil {
		return err
	}
	for _, it := range added {
		r.o.Traffic.Record(trafficlog.NewFeedback(it.Message, trafficlog.FeedbackNote{Rcpt: it.Recipient, Action: string(it.Action),
			Result: trafficlog.FeedbackQueued, Reason: it.Source + ": " + it.Reason}))
	}
	if len(added) > 0 {
		r.poke()
	}
	return nil
}

// Mailjet takes the events of a webhook request once the store has them:
// it writes what they ask of Odoo to the outbox and returns once that is
// durable (an error: the webhook answers 503 and Mailjet sends them
// again; what was added is not added twice).
func (r *Reporter) Mailjet(ctx context.Context, evs []webhook.Event) error {
	var items []Item
	for i := range evs {
		ev := &evs[i]
		it, ok, err := r.fromMailjet(ctx, ev)
		if err != nil {
			return err
		}
		if ok {
			items = append(items, it)
		}
	}
	return r.add(ctx, items)
}

func (r *Reporter) fromMailjet(ctx context.Context, ev *webhook.Event) (Item, bool, error) {
	var it Item
	switch ev.Event {
	case "bounce", "blocked":
		if !r.on[ev.Event] {
			return it, false, nil
		}
		var alert string
		var ok bool
		if it, alert, ok = mailjetDSN(ev); !ok {
			if alert != "" {
				r.alert(ctx, ev, alert)
			}
			return it, false, nil
		}
	case "spam":
		if !r.on["spam"] {
			return it, false, nil
		}
		it = Item{Trigger: TriggerSpam, Action: ActionBlacklist, Source: "mailjet spam", Time: ev.Time,
			Reason: "Reported as spam by the recipient (Mailjet spam event" + via(ev.Source) + "); blacklisted by mjrelay."}
	case "unsub":
		if !r.on["unsub"] {
			return it, false, nil
		}
		it = Item{Trigger: TriggerUnsub, Source: "mailjet unsub", Time: ev.Time}
	default:
		return it, false, nil
	}
	it.Recipient = strings.ToLower(strings.TrimSpace(ev.Email))
	m, err := r.find(ctx, ev)
	if err != nil || m == nil || it.Recipient == "" {
		if m == nil && err == nil {
			r.log.Info("Mailjet event for a message the relay does not know: not reported to Odoo",
				"event", ev.Event, "custom_id", ev.CustomID, "mailjet_id", ev.MessageID)
		}
		return it, false, err
	}
	it.Message = m.ID
	it.Key = KeyOf(m.ID, it.Recipient, it.Trigger)
	switch it.Trigger {
	case TriggerBounce:
		if err := r.original(ctx, m, &it); err != nil {
			return it, false, err
		}
	case TriggerUnsub:
		switch {
		case m.Unsubscribe != "":
			it.Action, it.URL = ActionUnsubscribe, m.Unsubscribe
			it.Reason = "Unsubscribed through Mailjet (unsub event); Odoo's one-click opt-out link of the mailing was used."
		case r.o.UnsubBlacklist:
			it.Action = ActionBlacklist
			it.Reason = "Unsubscribed through Mailjet (unsub event); the message had no Odoo one-click link, so mjrelay blacklisted the address."
		default:
			r.o.Traffic.Record(trafficlog.NewFeedback(m.ID, trafficlog.FeedbackNote{Rcpt: it.Recipient, Result: trafficlog.FeedbackSkipped,
				Reason: "unsubscribed at Mailjet; the message had no Odoo one-click List-Unsubscribe URL and odoo.unsub_blacklist is off"}))
			return it, false, nil
		}
	}
	return it, true, nil
}

func via(source string) string {
	if source == "" {
		return ""
	}
	return ", feedback loop " + source
}

// alert records a block that is not reported.
func (r *Reporter) alert(ctx context.Context, ev *webhook.Event, why string) {
	r.alerts.Add(1)
	r.log.Warn("Mailjet blocked a message for a reason that is not the recipient's: check the message or the sender in Mailjet",
		"event", ev.Event, "error_related_to", ev.ErrorRelatedTo, "error", ev.Error, "custom_id", ev.CustomID)
	m, err := r.find(ctx, ev)
	if err != nil || m == nil {
		return
	}
	r.o.Traffic.Record(trafficlog.NewFeedback(m.ID, trafficlog.FeedbackNote{Rcpt: strings.ToLower(ev.Email),
		Result: trafficlog.FeedbackAlert, Reason: ev.ErrorRelatedTo + ": " + ev.Error + ": " + why}))
}

// Failed takes a permanent failure at the relay (a failed event) before the
// message leaves the queue, with its bytes: one DSN per recipient, durable
// when it returns.
func (r *Reporter) Failed(ctx context.Context, ev trafficlog.Event, body []byte) error {
	if !r.on["failed"] {
		return nil
	}
	hdr := withMessageID(odoo.HeaderBlock(body, 64<<10), ev.MessageID)
	items := relayDSNs(&ev)
	for i := range items {
		it := &items[i]
		it.Message, it.Key, it.Headers = ev.ID, KeyOf(ev.ID, it.Recipient, TriggerBounce), hdr
		if it.Time.IsZero() {
			it.Time = r.o.Now()
		}
		it.To = r.o.BounceAddress
		if it.To == "" {
			it.To = ev.From
		}
	}
	return r.add(ctx, items)
}

// Run sends what is due until ctx ends.
func (r *Reporter) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastForget := time.Time{}
	for {
		if now := r.o.Now(); now.Sub(lastForget) > time.Hour {
			if _, err := r.out.Forget(ctx, now.Add(-r.o.Remember)); err != nil {
				r.log.Warn("feedback outbox: cannot forget old keys", "err", err)
			}
			lastForget = now
		}
		for r.round(ctx) {
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-tick.C:
		}
	}
}

// round sends one batch of due items; it reports whether more may be due.
func (r *Reporter) round(ctx context.Context) bool {
	now := r.o.Now()
	r.mu.Lock()
	paused, probing := now.Before(r.pauseUntil), r.problem != nil
	r.mu.Unlock()
	if paused || ctx.Err() != nil {
		return false
	}
	n := 16
	if probing {
		n = 1 // one item at a time while the login or rights are refused
	}
	es, err := r.out.Claim(ctx, now, n, lease)
	if err != nil {
		r.log.Error("feedback outbox: cannot read due reports", "err", err)
		return false
	}
	for i, e := range es {
		if !r.send(ctx, e) {
			for _, rest := range es[i+1:] { // paused: give the rest back
				r.retry(ctx, rest, rest.State)
			}
			return false
		}
	}
	return len(es) == n
}

// send makes one attempt; false pauses sending (Odoo unreachable or
// refusing the relay).
func (r *Reporter) send(ctx context.Context, e Entry) bool {
	answer, err := r.deliver(ctx, e.Item)
	now := r.o.Now()
	note := trafficlog.FeedbackNote{Rcpt: e.Recipient, Action: string(e.Action), Attempt: e.State.Attempts + 1, Reason: e.Source + ": " + e.Reason}
	if err == nil {
		if ferr := r.out.Finish(ctx, e.Key, Result{Outcome: Reported, At: now, Answer: answer}); ferr != nil {
			r.log.Error("feedback outbox: cannot record a report as done", "err", ferr, "key", e.Key)
		}
		r.reported.Add(1)
		r.mu.Lock()
		if r.problem != nil {
			r.log.Info("Odoo accepts the relay's reports again; the waiting ones are sent", "was", r.problem)
		}
		r.problem, r.setupWait, r.last = nil, 0, now
		r.mu.Unlock()
		note.Result, note.Answer = trafficlog.FeedbackReported, answer
		r.o.Traffic.Record(trafficlog.NewFeedback(e.Message, note))
		return true
	}
	switch odoo.ClassOf(err) {
	case odoo.Temporary:
		st := e.State
		st.Attempts++
		st.LastError = err.Error()
		st.Next = now.Add(r.backoff(st.Attempts))
		r.retry(ctx, e, st)
		if st.Attempts == 1 {
			note.Result, note.Answer = trafficlog.FeedbackRetrying, err.Error()
			r.o.Traffic.Record(trafficlog.NewFeedback(e.Message, note))
		}
		r.log.Warn("Odoo did not take a report; it is tried again", "err", err, "message", e.Message, "action", e.Action, "next", st.Next)
		r.mu.Lock()
		r.pauseUntil = now.Add(r.o.RetryMin)
		r.mu.Unlock()
		return false
	case odoo.Rejected:
		if ferr := r.out.Finish(ctx, e.Key, Result{Outcome: Failed, At: now, Answer: err.Error()}); ferr != nil {
			r.log.Error("feedback outbox: cannot record a refused report", "err", ferr, "key", e.Key)
		}
		r.failed.Add(1)
		r.log.Error("Odoo refused a report for good", "err", err, "message", e.Message, "action", e.Action, "rcpt", e.Recipient)
		note.Result, note.Answer = trafficlog.FeedbackFailed, err.Error()
		r.o.Traffic.Record(trafficlog.NewFeedback(e.Message, note))
		return true
	}
	// Setup: nothing works until an administrator fixes the login or the
	// rights. Everything stays in the outbox; one item probes, less and
	// less often (up to RetryMax).
	st := e.State
	st.LastError = err.Error()
	r.mu.Lock()
	first := r.problem == nil
	if first {
		r.since = now
	}
	r.problem = err
	r.setupWait = min(max(2*r.setupWait, r.o.RetryMin), r.o.RetryMax)
	r.pauseUntil = now.Add(r.setupWait)
	st.Next = r.pauseUntil
	r.mu.Unlock()
	r.retry(ctx, e, st)
	if first {
		r.log.Error("Odoo refuses the relay's reports: fix the [odoo] login, API key or the user's rights; the reports wait in the outbox",
			"err", err)
		note.Result, note.Answer = trafficlog.FeedbackRetrying, err.Error()
		r.o.Traffic.Record(trafficlog.NewFeedback(e.Message, note))
	}
	return false
}

func (r *Reporter) retry(ctx context.Context, e Entry, st State) {
	if err := r.out.Retry(ctx, e.Key, st); err != nil {
		r.log.Error("feedback outbox: cannot record a retry", "err", err, "key", e.Key)
	}
}

// deliver performs one item's call.
func (r *Reporter) deliver(ctx context.Context, it Item) (string, error) {
	switch it.Action {
	case ActionDSN:
		return r.odoo.ProcessMessage(ctx, odoo.DSN(r.bounce(it)))
	case ActionBlacklist:
		return r.odoo.Blacklist(ctx, it.Recipient, it.Reason)
	case ActionUnsubscribe:
		return r.odoo.OneClick(ctx, it.URL)
	}
	return "", &odoo.Error{Class: odoo.Rejected, Op: "feedback", Err: fmt.Errorf("unknown action %q", it.Action)}
}

// bounce is the DSN of an item: its Message-Id derives from the key, new
// for Odoo and the same on every attempt.
func (r *Reporter) bounce(it Item) odoo.Bounce {
	return odoo.Bounce{MessageID: "<mjrelay-dsn." + it.Key + "@" + r.o.Hostname + ">", Hostname: r.o.Hostname, To: it.To,
		Recipient: it.Recipient, Status: it.Status, Diagnostic: it.Diagnostic, RemoteMTA: it.RemoteMTA, Explanation: it.Reason,
		QueueID: it.Message, Arrival: it.Arrival, Failed: it.Time, Headers: it.Headers}
}

// backoff is min(RetryMin·2^(n-1), RetryMax), jittered by ±20%.
func (r *Reporter) backoff(n int) time.Duration {
	d := r.o.RetryMin << min(n-1, 30)
	if d <= 0 || d > r.o.RetryMax {
		d = r.o.RetryMax
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
