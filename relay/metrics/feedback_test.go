package metrics_test

import (
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/relay/metrics"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

func TestFeedbackMetrics(t *testing.T) {
	m := metrics.New(nil)
	m.Observe(metrics.State{Feedback: func() metrics.Feedback { return metrics.Feedback{Pending: 3, OldestSeconds: 42, Blocked: true} }})
	rec := m.Recorder()
	for _, n := range []trafficlog.FeedbackNote{
		{Action: "bounce", Result: trafficlog.FeedbackQueued}, {Action: "bounce", Result: trafficlog.FeedbackReported},
		{Action: "blacklist", Result: trafficlog.FeedbackFailed},
		{Result: trafficlog.FeedbackAlert, Reason: "content: bad or empty template: ..."},
		{Result: trafficlog.FeedbackAlert, Reason: "Weird Family!: x"},
	} {
		rec.Record(trafficlog.NewFeedback("id", n))
	}
	out := scrape(t, m)
	for _, want := range []string{
		`mjrelay_odoo_feedback_total{action="bounce",result="queued"} 1`,
		`mjrelay_odoo_feedback_total{action="bounce",result="reported"} 1`,
		`mjrelay_odoo_feedback_total{action="blacklist",result="failed"} 1`,
		`mjrelay_mailjet_blocks_not_reported_total{family="content"} 1`,
		`mjrelay_mailjet_blocks_not_reported_total{family="other"} 1`,
		"mjrelay_odoo_feedback_pending 3", "mjrelay_odoo_feedback_oldest_pending_seconds 42", "mjrelay_odoo_feedback_blocked 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
}
