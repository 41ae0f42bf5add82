package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Feedback is the Odoo feedback's state at scrape time.
type Feedback struct {
	Pending       int
	OldestSeconds float64 // age of the oldest pending report (0: none)
	// Blocked: Odoo refuses the relay's login or rights; every report
	// waits for an administrator.
	Blocked bool
}

func (m *metrics) recordFeedback(e trafficlog.Event) {
	if e.Result == trafficlog.FeedbackAlert {
		family, _, _ := strings.Cut(e.Reason, ":")
		m.notBounced.WithLabelValues(label(strings.TrimSpace(family), "unknown")).Inc()
		return
	}
	m.feedback.WithLabelValues(label(e.Action, "none"), label(e.Result, "unknown")).Inc()
}

var (
	descFeedbackPending = prometheus.NewDesc("mjrelay_odoo_feedback_pending", "Reports to Odoo waiting in the outbox.", nil, nil)
	descFeedbackOldest  = prometheus.NewDesc("mjrelay_odoo_feedback_oldest_pending_seconds",
		"Age of the oldest report waiting in the outbox (0: none).", nil, nil)
	descFeedbackBlocked = prometheus.NewDesc("mjrelay_odoo_feedback_blocked",
		"1 while Odoo refuses the relay's login, API key or rights: reports wait until an administrator fixes [odoo].", nil, nil)
)

type feedbackCollector func() Feedback

func (feedbackCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFeedbackPending
	ch <- descFeedbackOldest
	ch <- descFeedbackBlocked
}

func (f feedbackCollector) Collect(ch chan<- prometheus.Metric) {
	st := f()
	blocked := 0.0
	if st.Blocked {
		blocked = 1
	}
	ch <- prometheus.MustNewConstMetric(descFeedbackPending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(descFeedbackOldest, prometheus.GaugeValue, st.OldestSeconds)
	ch <- prometheus.MustNewConstMetric(descFeedbackBlocked, prometheus.GaugeValue, blocked)
}
