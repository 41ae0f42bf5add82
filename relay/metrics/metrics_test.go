package metrics_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/relay/metrics"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

type fakeAccount struct{ st account.State }

func (a fakeAccount) State() account.State { return a.st }

type fakeStore struct{ h store.Health }

func (s fakeStore) Health() store.Health { return s.h }

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	return w.Body.String()
}

func TestMetrics(t *testing.T) {
	m := metrics.New(nil)
	rec := m.Recorder()
	for _, ev := range storetest.NewSample(t0).Events {
		rec.Record(ev)
	}
	rec.Record(trafficlog.Event{Event: trafficlog.Aborted})
	rec.Record(trafficlog.Event{Event: trafficlog.Refused, Stage: "auth", Reason: "Bad Reason With Spaces"})
	m.WebhookRequest(200)
	m.WebhookEvent("sent", "accepted")
	m.WebhookEvent("unknown", "unknown_event")
	snap := account.NewSnapshot(t0, "0123456789abcdef0123456789abcdef", nil, nil)
	m.Observe(metrics.State{
		QueueDepth: func() map[string]int { return map[string]int{"transactional": 1, "bulk": 0} },
		Held:       func() map[string]int { return map[string]int{"transactional": 1, "bulk": 0} },
		Account:    fakeAccount{account.State{Snapshot: snap, Source: account.SourceAPI, Age: 30 * time.Second, LastAttempt: t0}},
		Store:      fakeStore{store.Health{DroppedEvents: 3, DroppedBodies: 2, Pending: 5, WriteErrors: 1}},
	})
	out := scrape(t, m)
	for _, line := range []string{
		`mjrelay_messages_received_total{class="transactional"} 4`,
		`mjrelay_messages_received_total{class="bulk"} 1`,
		`mjrelay_messages_refused_total{reason="sender_not_found",stage="data"} 1`,
		`mjrelay_messages_refused_total{reason="other",stage="auth"} 1`,
		`mjrelay_messages_aborted_total 1`,
		`mjrelay_delivery_attempts_total{class="transactional",transport="api"} 1`,
		`mjrelay_messages_delivered_total{class="bulk",transport="smtp"} 1`,
		`mjrelay_messages_deferred_total{class="transactional",transport="smtp"} 1`,
		`mjrelay_messages_failed_total{class="transactional",transport="smtp"} 1`,
		`mjrelay_messages_sandboxed_total{class="transactional"} 1`,
		`mjrelay_upstream_replies_total{code="421",transport="smtp"} 1`,
		`mjrelay_upstream_replies_total{code="550",transport="smtp"} 1`,
		`mjrelay_delivery_latency_seconds_count{class="transactional"} 1`,
		`mjrelay_attempt_duration_seconds_count{transport="smtp"} 3`,
		`mjrelay_queue_depth{lane="transactional"} 1`,
		`mjrelay_queue_depth{lane="bulk"} 0`,
		`mjrelay_queue_held{lane="transactional"} 1`,
		`mjrelay_queue_held{lane="bulk"} 0`,
		`mjrelay_mailjet_account_age_seconds 30`,
		`mjrelay_mailjet_account_known 1`,
		`mjrelay_mailjet_account_stale 0`,
		`mjrelay_webhook_events_total{event="sent",result="accepted"} 1`,
		`mjrelay_webhook_events_total{event="unknown",result="unknown_event"} 1`,
		`mjrelay_webhook_requests_total{code="200"} 1`,
		`mjrelay_inspect_dropped_events_total 3`,
		`mjrelay_inspect_dropped_bodies_total 2`,
		`mjrelay_inspect_pending_events 5`,
		`mjrelay_inspect_write_errors_total 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(out, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "mjrelay_") && !strings.HasPrefix(l, "go_") &&
			!strings.HasPrefix(l, "process_") {
			t.Errorf("unexpected series %s", l)
		}
	}
}

// TestStateOptional: without the state (offline, or before Observe) and
// with an unknown account, the series that need it are absent.
func TestStateOptional(t *testing.T) {
	m := metrics.New(nil)
	if out := scrape(t, m); strings.Contains(out, "mjrelay_queue_depth") || strings.Contains(out, "mjrelay_inspect_") ||
		strings.Contains(out, "mjrelay_mailjet_account") {
		t.Errorf("state series without a state:\n%s", out)
	}
	m.Observe(metrics.State{Account: fakeAccount{}})
	out := scrape(t, m)
	if !strings.Contains(out, "mjrelay_mailjet_account_known 0") || strings.Contains(out, "mjrelay_mailjet_account_age_seconds") {
		t.Errorf("unknown account:\n%s", out)
	}
}
