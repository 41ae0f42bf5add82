package web

import (
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

func TestMetrics(t *testing.T) {
	e := newEnv(t, withWebhook(t))
	rec := e.srv.Recorder()
	for _, ev := range e.smp.Events {
		rec.Record(ev)
	}
	rec.Record(trafficlog.Event{Event: trafficlog.Aborted})
	rec.Record(trafficlog.Event{Event: trafficlog.Refused, Stage: "auth", Reason: "Bad Reason With Spaces"})
	body := `[{"event":"sent","CustomID":"x","MessageID":1},{"event":"teleport","CustomID":"x"},{"event":"open"}]`
	if w := e.do(t, "POST", "/webhooks/mailjet", strings.NewReader(body), auth("mailjet", hookPassword)); w.Code != 200 {
		t.Fatalf("webhook: %d", w.Code)
	}
	w := e.do(t, "GET", "/metrics", nil)
	if w.Code != 200 {
		t.Fatalf("%d", w.Code)
	}
	out := w.Body.String()
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
		`mjrelay_mailjet_account_age_seconds 30`,
		`mjrelay_mailjet_account_known 1`,
		`mjrelay_mailjet_account_stale 0`,
		`mjrelay_webhook_events_total{event="sent",result="accepted"} 1`,
		`mjrelay_webhook_events_total{event="unknown",result="unknown_event"} 1`,
		`mjrelay_webhook_events_total{event="open",result="no_id"} 1`,
		`mjrelay_webhook_requests_total{code="200"} 1`,
		`mjrelay_inspect_dropped_events_total 0`,
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
