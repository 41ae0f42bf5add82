package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// storedEvent is what a StoredEvent of the relay keeps: what the message
// row does not already hold.
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

// Message is the detail of the message: the row (its recipients loaded)
// and its timeline's events in the order stored. HasRaw and RawSize are
// the caller's.
func (r *Row) Message(events []StoredEvent) *Message {
	m := &Message{Summary: r.Summary(), ClassRule: r.ClassRule, Verdict: r.Verdict, Stage: r.Stage,
		Helo: r.Helo, TLS: r.TLS, Upstream: r.Upstream, UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC(),
		LatencyMS: r.LatencyMS, Recipients: []Recipient{}, AttemptList: []Attempt{}, Events: []webhook.Event{},
		UpstreamIDs: strings.Fields(r.UpstreamIDs)}
	if m.UpstreamIDs == nil {
		m.UpstreamIDs = []string{}
	}
	if r.State == StateSandboxed {
		m.LatencyMS = 0 // older records timed sandboxed mail too; it never reached Mailjet
	}
	if r.FinalAt != 0 {
		t := time.UnixMilli(r.FinalAt).UTC()
		m.FinalAt = &t
	}
	for _, rc := range r.Rcpts {
		x := Recipient{Rcpt: rc.Addr, State: rc.State, Reply: rc.Reply, MailjetUUID: rc.MailjetUUID}
		if rc.MailjetID != 0 {
			x.MailjetID = strconv.FormatInt(rc.MailjetID, 10)
		}
		m.Recipients = append(m.Recipients, x)
	}
	var relay, mj, fb []Step
	for _, se := range events {
		t := se.At.UTC()
		if ev, ok := strings.CutPrefix(se.Kind, "mj_"); ok {
			var e webhook.Event
			if json.Unmarshal(se.Data, &e) != nil {
				continue
			}
			e.Event, e.Time = ev, t
			m.Events = append(m.Events, e)
			mj = append(mj, mailjetStep(t, &e))
			continue
		}
		var d storedEvent
		if json.Unmarshal(se.Data, &d) != nil {
			continue
		}
		e := d.event(trafficlog.Kind(se.Kind), t, r.To())
		if e.Event == trafficlog.Feedback {
			fb = append(fb, feedbackStep(&e)) // after what caused it
			continue
		}
		if e.Event == trafficlog.Attempt {
			m.AttemptList = append(m.AttemptList, Attempt{Time: t, Attempt: e.Attempt, Transport: e.Transport,
				Upstream: e.Upstream, UpstreamID: e.UpstreamID, Reply: e.Reply.String(), DurationMS: e.DurationMS, Rcpts: e.Rcpts})
		}
		steps := relaySteps(&e)
		if e.Event == trafficlog.Received || e.Event == trafficlog.Refused {
			relay = append(steps, relay...) // receipt comes first, whenever it was written
		} else {
			relay = append(relay, steps...)
		}
	}
	m.Timeline = append(append(relay, mj...), fb...)
	return m
}

func relaySteps(e *trafficlog.Event) []Step {
	st := Step{Time: e.Time, Kind: string(e.Event), Source: "relay", Reply: e.Reply.String()}
	to := strings.Join(e.To, ", ")
	switch e.Event {
	case trafficlog.Received:
		st.Text = fmt.Sprintf("Received from %s", orDash(e.Client))
		if e.User != "" {
			st.Text += " (login " + e.User + ")"
		}
		if e.TLS {
			st.Text += " over TLS"
		}
		if e.Class != "" {
			st.Text += fmt.Sprintf("; lane %s (rule %s)", e.Class, orDash(e.ClassRule))
		}
		pol := Step{Time: e.Time, Kind: "policy", Source: "relay", Text: "Sender policy: pass"}
		if e.Verdict != "" {
			pol.Text = "Sender policy: accepted with warning " + e.Verdict
		}
		return []Step{st, pol}
	case trafficlog.Refused:
		st.Text, st.Bad = fmt.Sprintf("Refused at %s: %s", orDash(e.Stage), orDash(e.Reason)), true
		if e.Verdict != "" {
			st.Text += " (policy " + e.Verdict + ")"
		}
		if e.Count > 1 {
			st.Text += fmt.Sprintf("; this record stands for %d refusals alike, the last one shown", e.Count)
		}
	case trafficlog.Attempt:
		st.Text = fmt.Sprintf("Attempt %d via %s", e.Attempt, orDash(e.Transport))
		if e.Upstream != "" {
			st.Text += " (" + e.Upstream + ")"
		}
		st.Text += " took " + durText(e.DurationMS)
		if e.UpstreamID != "" {
			st.Text += "; upstream id " + e.UpstreamID
		}
	case trafficlog.Delivered:
		st.Text = "Accepted by Mailjet for " + orDash(to)
	case trafficlog.Sandboxed:
		st.Text = "Sandbox: recorded, not sent, for " + orDash(to)
	case trafficlog.Deferred:
		st.Text, st.Next = "Deferred for "+orDash(to), e.Next
	case trafficlog.Failed:
		st.Text, st.Bad = "Failed for "+orDash(to), true
		if e.Reason != "" {
			st.Text += ": " + e.Reason
		}
	case trafficlog.Deleted:
		st.Text, st.Bad = "Deleted from the queue", true
		if e.Reason != "" {
			st.Text += ": " + e.Reason
		}
	default:
		st.Text = string(e.Event)
	}
	return []Step{st}
}

func mailjetStep(t time.Time, e *webhook.Event) Step {
	st := Step{Time: t, Kind: "mailjet:" + e.Event, Source: "mailjet", Reply: e.Reply()}
	who := orDash(e.Email)
	switch e.Event {
	case "sent":
		st.Text = "Mailjet delivered to " + who
	case "open":
		st.Text = "Opened by " + who
	case "click":
		st.Text = "Link clicked by " + who + ": " + e.URL
	case "bounce":
		kind := "soft"
		if e.HardBounce {
			kind = "hard"
		}
		st.Text, st.Bad = fmt.Sprintf("Bounced (%s) for %s", kind, who), true
	case "blocked":
		st.Text, st.Bad = "Blocked by Mailjet for "+who, true
	case "spam":
		st.Text, st.Bad = "Reported as spam by "+who, true
	case "unsub":
		st.Text = who + " unsubscribed"
	default:
		st.Text = "Mailjet " + e.Event + " for " + who
	}
	if e.IP != "" && (e.Event == "open" || e.Event == "click" || e.Event == "unsub") {
		st.Text += " from " + e.IP
	}
	return st
}

// durText formats milliseconds for the timeline.
func durText(ms float64) string {
	switch {
	case ms < 1:
		return "<1 ms"
	case ms < 1000:
		return fmt.Sprintf("%.0f ms", ms)
	case ms < 60_000:
		return fmt.Sprintf("%.1f s", ms/1000)
	}
	return (time.Duration(ms) * time.Millisecond).Round(time.Second).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
