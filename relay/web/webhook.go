package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
)

// maxWebhookBody bounds one webhook request.
const maxWebhookBody = 64 << 20

// webhookBatch is how many events the webhook hands to the store at once.
// It reads the body as it goes: a batch is decoded, handed over and written
// before the next is read, so that memory stays at one batch (and what
// webhook.Decoder holds: one event of at most webhook.MaxEventBytes, each
// field clipped to webhook.MaxFieldBytes) whatever the size of the body.
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
	s.d.Metrics.WebhookRequest(code)
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
	store := func(batch []webhook.Event) error {
		if len(batch) == 0 {
			return nil
		}
		ctx, cancel := context.WithTimeout(r.Context(), webhookWait)
		defer cancel()
		err := s.d.Store.RecordMailjet(ctx, batch)
		if err == nil {
			err = s.d.Store.Flush(ctx) // written before more is read
		}
		if err == nil && s.d.Feedback != nil {
			// What the events ask of Odoo is durable in the outbox before
			// the 200 (looked up in the store, which has them now).
			if ferr := s.d.Feedback.Mailjet(ctx, batch); ferr != nil {
				err = fmt.Errorf("the Odoo feedback outbox: %w", ferr)
			}
		}
		if err != nil {
			for _, e := range batch {
				s.d.Metrics.WebhookEvent(eventLabel(e.Event), "dropped")
			}
			s.log.Error("Mailjet webhook: the traffic store or the Odoo feedback outbox cannot take the events; answering 503 so that Mailjet retries",
				"err", err, "events", len(batch), "recorded_before", accepted)
			return err
		}
		for _, e := range batch {
			s.d.Metrics.WebhookEvent(e.Event, "accepted")
		}
		accepted += len(batch)
		return nil
	}
	skip := func(sk webhook.Skip) {
		skipped++
		s.d.Metrics.WebhookEvent(eventLabel(sk.Event), sk.Reason)
		s.log.Warn("Mailjet webhook: event skipped", "event", sk.Event, "result", sk.Reason, "why", sk.Detail)
	}
	dec := webhook.NewDecoder(http.MaxBytesReader(w, r.Body, maxWebhookBody), s.d.Now)
	for {
		batch, err := dec.Batch(webhookBatch, skip)
		if err != nil && err != io.EOF {
			s.log.Warn("Mailjet webhook: unreadable payload; keeping the events read before the error",
				"err", err, "events", accepted+len(batch), "remote", r.RemoteAddr)
		}
		if store(batch) != nil {
			http.Error(w, "busy, retry later", http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable
		}
		if err != nil {
			break
		}
	}
	writeJSON(w, http.StatusOK, map[string]int{"accepted": accepted, "skipped": skipped})
	return http.StatusOK
}

// eventLabel is an event name as a metrics label.
func eventLabel(e string) string {
	if webhook.Known(e) {
		return e
	}
	return "unknown"
}
