package web

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/feedback/journal"
	"github.com/mjrelay/mjrelay/relay/odoo"
	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
)

// recordingFeedback is a Feedback that keeps what the webhook hands it.
type recordingFeedback struct {
	mu   sync.Mutex
	evs  []webhook.Event
	fail error
}

func (f *recordingFeedback) Mailjet(_ context.Context, evs []webhook.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.evs = append(f.evs, evs...)
	return nil
}

func (f *recordingFeedback) Status(context.Context) feedback.Status { return feedback.Status{} }

// TestWebhookHandsEventsToFeedback: the events reach the Odoo feedback
// before the 200, and an outbox that cannot take them makes Mailjet retry.
func TestWebhookHandsEventsToFeedback(t *testing.T) {
	fb := &recordingFeedback{}
	e := newEnv(t, withWebhook(t), withDeps(func(d *Deps) { d.Feedback = fb }))
	id := e.smp.IDs["invoice"]
	body := "[" + mjEvent("bounce", id, 42, mjExtra["bounce"]) + "," + mjEvent("spam", id, 42, mjExtra["spam"]) + "]"
	if w := e.do(t, "POST", "/webhooks/mailjet", strings.NewReader(body), auth("mailjet", hookPassword)); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if len(fb.evs) != 2 || fb.evs[0].Event != "bounce" || fb.evs[1].Event != "spam" || fb.evs[0].CustomID != id {
		t.Fatalf("feedback got %+v", fb.evs)
	}
	fb.fail = errors.New("disk full")
	if w := e.do(t, "POST", "/webhooks/mailjet", strings.NewReader(body), auth("mailjet", hookPassword)); w.Code != 503 {
		t.Fatalf("an outbox failure answered %d", w.Code)
	}
}

// TestFeedbackProblemShownWithoutKey: a reporter whose Odoo refuses the
// API key (the real client against the stand-in) shows the problem on
// every page, in /api/feedback and on /readyz (still 200: the relay
// works), and the key nowhere.
func TestFeedbackProblemShownWithoutKey(t *testing.T) {
	const key = "the-odoo-api-key-d41d8cd98f"
	od := odootest.Start("db", "relay", "another-key")
	defer od.Close()
	var rep *feedback.Reporter
	e := newEnv(t, withUsers(t), withDeps(func(d *Deps) {
		out, err := journal.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { out.Close() })
		rep = feedback.New(feedback.Options{Hostname: "relay.test", Report: []string{"bounce"}}, out,
			odoo.New(odoo.Options{URL: od.URL(), DB: "db", Login: "relay", APIKey: key}), d.Store)
		d.Feedback = rep
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rep.Run(ctx)
	ev := webhook.Event{Event: "bounce", CustomID: e.smp.IDs["invoice"], Email: "mr.x@client.example", HardBounce: true,
		ErrorRelatedTo: "recipient", Error: "user unknown", Time: t0}
	if err := rep.Mailjet(ctx, []webhook.Event{ev}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rep.Status(ctx).Problem == "" {
		if time.Now().After(deadline) {
			t.Fatal("the refused key is not reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range []string{"/", "/messages", "/api/feedback", "/readyz", "/metrics", "/messages/" + e.smp.IDs["invoice"]} {
		w := e.do(t, "GET", p, nil, auth("admin", uiPassword))
		if w.Code != 200 {
			t.Errorf("%s: %d", p, w.Code)
		}
		body := w.Body.String()
		if strings.Contains(body, key) {
			t.Errorf("%s shows the Odoo API key", p)
		}
		if p != "/metrics" && p != "/messages/"+e.smp.IDs["invoice"] && !strings.Contains(body, "refused the login") {
			t.Errorf("%s does not say Odoo refuses the login:\n%.2000s", p, body)
		}
	}
}
