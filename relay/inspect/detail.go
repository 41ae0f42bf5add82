package inspect

import (
	"bytes"
	"compress/flate"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Get returns a message with its timeline.
func (s *Store) Get(ctx context.Context, id string) (*store.Message, error) {
	r, err := scanRow(s.rdb.QueryRowContext(ctx, `SELECT `+rowColumns+` FROM messages WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	m := &store.Message{Summary: r.summary(), ClassRule: r.classRule, Verdict: r.verdict, Stage: r.stage,
		Helo: r.helo, TLS: r.tls, Upstream: r.upstream, UpdatedAt: time.UnixMilli(r.updatedAt).UTC(),
		LatencyMS: r.latencyMS, Recipients: []store.Recipient{}, AttemptList: []store.Attempt{}, Events: []webhook.Event{},
		UpstreamIDs: strings.Fields(r.upstreamIDs)}
	if m.UpstreamIDs == nil {
		m.UpstreamIDs = []string{}
	}
	if r.state == store.StateSandboxed {
		m.LatencyMS = 0 // older records timed sandboxed mail too; it never reached Mailjet
	}
	if r.finalAt != 0 {
		t := time.UnixMilli(r.finalAt).UTC()
		m.FinalAt = &t
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT rcpt, state, reply, coalesce(mj_id, 0), coalesce(mj_uuid, '')
		FROM rcpts WHERE key = ?`, r.key)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var rc store.Recipient
		var mj int64
		if err := rows.Scan(&rc.Rcpt, &rc.State, &rc.Reply, &mj, &rc.MailjetUUID); err != nil {
			rows.Close()
			return nil, err
		}
		if mj != 0 {
			rc.MailjetID = strconv.FormatInt(mj, 10)
		}
		m.Recipients = append(m.Recipients, rc)
	}
	rows.Close()
	if err := s.rdb.QueryRowContext(ctx, `SELECT size FROM bodies WHERE key = ?`, r.key).Scan(&m.RawSize); err == nil {
		m.HasRaw = true
	} else if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err := s.timeline(ctx, r, m); err != nil {
		return nil, err
	}
	if err := s.feedbackOf(ctx, r.key, m); err != nil {
		return nil, err
	}
	return m, nil
}

func (s *Store) timeline(ctx context.Context, r *row, m *store.Message) error {
	rows, err := s.rdb.QueryContext(ctx, `SELECT at, kind, data FROM events WHERE key = ? ORDER BY seq`, r.key)
	if err != nil {
		return err
	}
	defer rows.Close()
	var relay, mj, fb []store.Step
	for rows.Next() {
		var at int64
		var kind string
		var data []byte
		if err := rows.Scan(&at, &kind, &data); err != nil {
			return err
		}
		t := time.UnixMilli(at).UTC()
		if ev, ok := strings.CutPrefix(kind, "mj_"); ok {
			var e webhook.Event
			if json.Unmarshal(data, &e) != nil {
				continue
			}
			e.Event, e.Time = ev, t
			m.Events = append(m.Events, e)
			mj = append(mj, mailjetStep(t, &e))
			continue
		}
		var d storedEvent
		if json.Unmarshal(data, &d) != nil {
			continue
		}
		e := d.event(trafficlog.Kind(kind), t, r.to())
		if e.Event == trafficlog.Feedback {
			fb = append(fb, feedbackStep(&e)) // after what caused it
			continue
		}
		if e.Event == trafficlog.Attempt {
			m.AttemptList = append(m.AttemptList, store.Attempt{Time: t, Attempt: e.Attempt, Transport: e.Transport,
				Upstream: e.Upstream, UpstreamID: e.UpstreamID, Reply: e.Reply.String(), DurationMS: e.DurationMS, Rcpts: e.Rcpts})
		}
		steps := relaySteps(r, &e)
		if e.Event == trafficlog.Received || e.Event == trafficlog.Refused {
			relay = append(steps, relay...) // receipt comes first, whenever it was written
		} else {
			relay = append(relay, steps...)
		}
	}
	m.Timeline = append(append(relay, mj...), fb...)
	return rows.Err()
}

func relaySteps(r *row, e *trafficlog.Event) []store.Step {
	st := store.Step{Time: e.Time, Kind: string(e.Event), Source: "relay", Reply: e.Reply.String()}
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
		pol := store.Step{Time: e.Time, Kind: "policy", Source: "relay", Text: "Sender policy: pass"}
		if e.Verdict != "" {
			pol.Text = "Sender policy: accepted with warning " + e.Verdict
		}
		return []store.Step{st, pol}
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
	return []store.Step{st}
}

func mailjetStep(t time.Time, e *webhook.Event) store.Step {
	st := store.Step{Time: t, Kind: "mailjet:" + e.Event, Source: "mailjet", Reply: e.Reply()}
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

// Raw returns the stored raw message of id (ErrNotFound when there is none:
// bodies are not kept, or already pruned).
func (s *Store) Raw(ctx context.Context, id string) (io.Reader, int64, error) {
	var data []byte
	var size int64
	err := s.rdb.QueryRowContext(ctx, `SELECT b.data, b.size FROM bodies b JOIN messages m ON m.key = b.key
		WHERE m.id = ?`, id).Scan(&data, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, store.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	return flate.NewReader(bytes.NewReader(data)), size, nil
}
