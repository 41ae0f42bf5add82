package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxWebhookBody bounds one webhook request.
const maxWebhookBody = 64 << 20

// webhookBatch is how many events the webhook hands to the store at once.
// It reads the body as it goes: a batch is decoded, handed over and written
// before the next is read, so that memory stays at one batch (and one
// event of at most maxEventBytes, each field clipped to maxFieldBytes)
// whatever the size of the body.
const webhookBatch = 500

// webhookWait bounds how long one batch may wait for the store.
const webhookWait = 10 * time.Second

// webhook receives Mailjet's event callbacks: a JSON array of events
// (Version 2 grouping) or a single event object. Once authenticated it
// answers 200 to anything it can read or not (Mailjet retries every other
// answer for 24 hours, and a malformed event does not get better by being
// sent again); malformed, oversized and unknown events are logged and
// counted. It answers 503 when the store cannot take a batch within
// webhookWait, so that Mailjet sends the request again (the batches of it
// written before are then recorded twice: a duplicate event does not
// change a message's state, a lost one could).
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	code := s.handleWebhook(w, r)
	s.metrics.webhookReq.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) int {
	if s.hook == nil {
		http.Error(w, "Mailjet webhooks are not configured (set [webhooks] mailjet_user and mailjet_password_hash)", http.StatusNotFound)
		return http.StatusNotFound
	}
	if _, res, retry := s.hook.check(r); res != authOK {
		deny(w, res, retry, `Basic realm="mjrelay webhooks"`)
		if res == authThrottled {
			return http.StatusTooManyRequests
		}
		return http.StatusUnauthorized
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return http.StatusMethodNotAllowed
	}
	accepted, skipped := 0, 0
	batch := make([]webhook.Event, 0, webhookBatch)
	store := func() error {
		if len(batch) == 0 {
			return nil
		}
		ctx, cancel := context.WithTimeout(r.Context(), webhookWait)
		defer cancel()
		err := s.d.Store.RecordMailjet(ctx, batch)
		if err == nil {
			err = s.d.Store.Flush(ctx) // written before more is read
		}
		if err != nil {
			for _, e := range batch {
				s.metrics.webhook.WithLabelValues(eventLabel(e.Event), "dropped").Inc()
			}
			s.log.Error("Mailjet webhook: the traffic store cannot take the events; answering 503 so that Mailjet retries",
				"err", err, "events", len(batch), "recorded_before", accepted)
			return err
		}
		for _, e := range batch {
			s.metrics.webhook.WithLabelValues(e.Event, "accepted").Inc()
		}
		accepted += len(batch)
		batch = batch[:0]
		return nil
	}
	skip := func(event, result, why string) {
		skipped++
		s.metrics.webhook.WithLabelValues(eventLabel(event), result).Inc()
		s.log.Warn("Mailjet webhook: event skipped", "event", clipString(event, 40), "result", result, "why", why)
	}
	er := newEventReader(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	for {
		raw, oversize, err := er.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.log.Warn("Mailjet webhook: unreadable payload; keeping the events read before the error",
				"err", err, "events", accepted+len(batch), "remote", r.RemoteAddr)
			break
		}
		if oversize {
			skip("", "malformed", fmt.Sprintf("event object over %d KiB", maxEventBytes>>10))
			continue
		}
		ev, result, why := mailjetEvent(raw, s.d.Now)
		if result != "" {
			skip(ev.Event, result, why)
			continue
		}
		if batch = append(batch, ev); len(batch) == webhookBatch && store() != nil {
			http.Error(w, "busy, retry later", http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable
		}
	}
	if store() != nil {
		http.Error(w, "busy, retry later", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	writeJSON(w, http.StatusOK, map[string]int{"accepted": accepted, "skipped": skipped})
	return http.StatusOK
}

func eventLabel(e string) string {
	if slices.Contains(webhook.Events, e) {
		return e
	}
	return "unknown"
}

// mailjetEvent reads one event leniently: fields of the wrong type are
// ignored. result is "" when the event is usable, else malformed,
// unknown_event or no_id.
func mailjetEvent(raw json.RawMessage, now func() time.Time) (ev webhook.Event, result, why string) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil || f == nil {
		return ev, "malformed", "not a JSON object"
	}
	ev.Event = strings.ToLower(str(f["event"]))
	switch {
	case ev.Event == "":
		return ev, "malformed", "no event name"
	case !slices.Contains(webhook.Events, ev.Event):
		return ev, "unknown_event", "unknown event name"
	}
	if t, ok := num(f["time"]); ok && t > 0 && t < 1e11 {
		ev.Time = time.Unix(int64(t), 0).UTC()
	} else {
		ev.Time = now().UTC()
	}
	if raw := f["MessageID"]; raw != nil {
		s := str(raw)
		if s == "" {
			s = string(bytes.TrimSpace(raw))
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 { // exact, beyond float precision
			ev.MessageID = n
		} else if v, ok := num(raw); ok && v >= 1 && v < 9e18 {
			ev.MessageID = int64(v)
		}
	}
	ev.MessageUUID = strings.ToLower(str(f["Message_GUID"]))
	ev.CustomID = str(f["CustomID"])
	if ev.MessageID == 0 && ev.MessageUUID == "" && ev.CustomID == "" {
		return ev, "no_id", "no CustomID, MessageID or Message_GUID"
	}
	ev.Email = str(f["email"])
	ev.Campaign = str(f["customcampaign"])
	ev.SMTPReply = str(f["smtp_reply"])
	ev.ErrorRelatedTo = str(f["error_related_to"])
	ev.Error = str(f["error"])
	ev.Comment = str(f["comment"])
	ev.HardBounce = boolean(f["hard_bounce"])
	ev.Blocked = boolean(f["blocked"])
	ev.Source = str(f["source"])
	ev.URL = str(f["url"])
	ev.IP = str(f["ip"])
	ev.Geo = str(f["geo"])
	ev.Agent = str(f["agent"])
	if id, ok := num(f["mj_list_id"]); ok {
		ev.ListID = int64(id)
	}
	return ev, "", ""
}

// maxFieldBytes clips each string field of an event.
const maxFieldBytes = 1 << 10

// str returns a JSON string (clipped to maxFieldBytes), or "" for anything
// else.
func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return clipString(s, maxFieldBytes)
}

// num reads a JSON number or a string holding one.
func num(raw json.RawMessage) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	s := string(raw)
	if raw[0] == '"' {
		s = str(raw)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

func boolean(raw json.RawMessage) bool {
	switch strings.ToLower(strings.Trim(string(bytes.TrimSpace(raw)), `"`)) {
	case "true", "1":
		return true
	}
	return false
}

// clipString cuts s to at most n bytes on a UTF-8 boundary; the cut copy
// does not keep the rest of s in memory.
func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return strings.Clone(s[:n])
}
