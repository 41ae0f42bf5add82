// Package metrics is the relay's Prometheus registry: series derived from
// the relay's events (it is one of their recorders), from the Mailjet
// webhook's requests, and from state read at scrape time (queue depth, the
// Mailjet account cache, the traffic store's health), with the Go and
// process collectors. It is built before the components that record to it;
// the web server serves its Handler on /metrics.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// metrics derives Prometheus series from the relay's events. Record only
// touches atomic counters: it is safe on the hot path.
type metrics struct {
	received   *prometheus.CounterVec
	refused    *prometheus.CounterVec
	aborted    prometheus.Counter
	attempts   *prometheus.CounterVec
	delivered  *prometheus.CounterVec
	deferred   *prometheus.CounterVec
	failed     *prometheus.CounterVec
	sandboxed  *prometheus.CounterVec
	deleted    prometheus.Counter
	replies    *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	attemptDur *prometheus.HistogramVec
	webhook    *prometheus.CounterVec
	webhookReq *prometheus.CounterVec
	feedback   *prometheus.CounterVec
	notBounced *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mjrelay_" + name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	m := &metrics{
		received:   f("messages_received_total", "Messages accepted and queued, by lane.", "class"),
		refused:    f("messages_refused_total", "SMTP refusals, by stage (auth, mail, rcpt, data) and reason.", "stage", "reason"),
		attempts:   f("delivery_attempts_total", "Delivery attempts, by lane and transport.", "class", "transport"),
		delivered:  f("messages_delivered_total", "Messages (or recipient groups) accepted by Mailjet, by lane and transport.", "class", "transport"),
		deferred:   f("messages_deferred_total", "Temporary delivery failures (retried), by lane and transport.", "class", "transport"),
		failed:     f("messages_failed_total", "Permanent delivery failures, by lane and transport.", "class", "transport"),
		sandboxed:  f("messages_sandboxed_total", "Messages recorded and not sent (sandbox mode), by lane.", "class"),
		replies:    f("upstream_replies_total", "Upstream reply codes per recipient, by transport and code (none: no reply).", "transport", "code"),
		webhook:    f("webhook_events_total", "Mailjet webhook events, by event and result (accepted, malformed, unknown_event, no_id, dropped).", "event", "result"),
		webhookReq: f("webhook_requests_total", "Mailjet webhook requests, by HTTP status.", "code"),
		feedback: f("odoo_feedback_total", "Reports to Odoo, by action (bounce, blacklist, unsubscribe) and result (queued, retrying, reported, failed, skipped).",
			"action", "result"),
		notBounced: f("mailjet_blocks_not_reported_total",
			"Mailjet blocks not reported to Odoo as bounces because they are not the recipient's fault, by error_related_to (content, spam, system, mailjet...).", "family"),
	}
	m.aborted = prometheus.NewCounter(prometheus.CounterOpts{Name: "mjrelay_messages_aborted_total",
		Help: "SMTP transactions that ended during DATA (nothing queued)."})
	m.deleted = prometheus.NewCounter(prometheus.CounterOpts{Name: "mjrelay_messages_deleted_total",
		Help: "Messages deleted from the queue by an administrator."})
	buckets := []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400}
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mjrelay_delivery_latency_seconds",
		Help: "Time from receipt to Mailjet's acceptance, by lane.", Buckets: buckets}, []string{"class"})
	m.attemptDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mjrelay_attempt_duration_seconds",
		Help: "Duration of one delivery attempt, by transport.", Buckets: prometheus.ExponentialBuckets(0.025, 2, 12)}, []string{"transport"})
	reg.MustRegister(m.aborted, m.deleted, m.latency, m.attemptDur,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Record implements trafficlog.Recorder.
func (m *metrics) Record(e trafficlog.Event) {
	class := label(e.Class, "unknown")
	tr := transportLabel(e.Transport)
	switch e.Event {
	case trafficlog.Received:
		m.received.WithLabelValues(class).Inc()
	case trafficlog.Refused:
		// An aggregated refusal (queue full, throttled) stands for Count.
		m.refused.WithLabelValues(label(e.Stage, "unknown"), label(e.Reason, "unknown")).Add(float64(max(e.Count, 1)))
	case trafficlog.Aborted:
		m.aborted.Inc()
	case trafficlog.Attempt:
		m.attempts.WithLabelValues(class, tr).Inc()
		m.attemptDur.WithLabelValues(tr).Observe(e.DurationMS / 1000)
		if len(e.Rcpts) == 0 {
			m.replies.WithLabelValues(tr, e.Reply.CodeText()).Inc()
		}
		for _, r := range e.Rcpts {
			m.replies.WithLabelValues(tr, r.Reply.CodeText()).Inc()
		}
	case trafficlog.Delivered:
		m.delivered.WithLabelValues(class, tr).Inc()
		m.latency.WithLabelValues(class).Observe(e.DurationMS / 1000)
	case trafficlog.Sandboxed:
		m.sandboxed.WithLabelValues(class).Inc()
	case trafficlog.Deferred:
		m.deferred.WithLabelValues(class, tr).Inc()
	case trafficlog.Failed:
		m.failed.WithLabelValues(class, tr).Inc()
	case trafficlog.Deleted:
		m.deleted.Inc()
	case trafficlog.Feedback:
		m.recordFeedback(e)
	}
}

// label keeps label values to a small, safe set: short lower-case codes as
// the relay emits them; anything else is "other".
func label(v, empty string) string {
	if v == "" {
		return empty
	}
	if len(v) > 40 {
		return "other"
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "other"
		}
	}
	return v
}

func transportLabel(t string) string {
	switch t {
	case "smtp", "api", "sandbox":
		return t
	case "":
		return "none"
	}
	return "other"
}

// stateCollector reads the values that are not events at scrape time:
// queue depth and held messages, the Mailjet account cache's age, the
// store's health.
type stateCollector struct{ d State }

var (
	descQueueDepth = prometheus.NewDesc("mjrelay_queue_depth", "Messages in the queue (ready, deferred, in flight or held), by lane.", []string{"lane"}, nil)
	descQueueHeld  = prometheus.NewDesc("mjrelay_queue_held",
		"Messages held until their sender can be checked (accepted while the Mailjet account state was unknown), by lane.", []string{"lane"}, nil)
	descAccountAge = prometheus.NewDesc("mjrelay_mailjet_account_age_seconds",
		"Age of the Mailjet account snapshot the sender policy uses (absent while unknown).", nil, nil)
	descAccountKnown = prometheus.NewDesc("mjrelay_mailjet_account_known", "1 when the Mailjet account state is known.", nil, nil)
	descAccountStale = prometheus.NewDesc("mjrelay_mailjet_account_stale",
		"1 when the snapshot is not fresh from the API (read from disk, or the last refresh failed).", nil, nil)
	descDropped = prometheus.NewDesc("mjrelay_inspect_dropped_events_total",
		"Events left out of the traffic store because its buffer was full (mail is not affected).", nil, nil)
	descDroppedBodies = prometheus.NewDesc("mjrelay_inspect_dropped_bodies_total",
		"Raw messages left out of the traffic store because too many bytes waited for the writer.", nil, nil)
	descPending     = prometheus.NewDesc("mjrelay_inspect_pending_events", "Events waiting for the traffic store's writer.", nil, nil)
	descWriteErrors = prometheus.NewDesc("mjrelay_inspect_write_errors_total", "Failed traffic store commits.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueDepth, descQueueHeld, descAccountAge, descAccountKnown, descAccountStale,
		descDropped, descDroppedBodies, descPending, descWriteErrors} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.d.QueueDepth != nil {
		for lane, n := range c.d.QueueDepth() {
			ch <- prometheus.MustNewConstMetric(descQueueDepth, prometheus.GaugeValue, float64(n), lane)
		}
	}
	if c.d.Held != nil {
		for lane, n := range c.d.Held() {
			ch <- prometheus.MustNewConstMetric(descQueueHeld, prometheus.GaugeValue, float64(n), lane)
		}
	}
	if c.d.Account != nil {
		st := c.d.Account.State()
		known, stale := 0.0, 0.0
		if st.Known() {
			known = 1
			ch <- prometheus.MustNewConstMetric(descAccountAge, prometheus.GaugeValue, st.Age.Seconds())
		}
		if st.Stale() {
			stale = 1
		}
		ch <- prometheus.MustNewConstMetric(descAccountKnown, prometheus.GaugeValue, known)
		ch <- prometheus.MustNewConstMetric(descAccountStale, prometheus.GaugeValue, stale)
	}
	if c.d.Store != nil {
		h := c.d.Store.Health()
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(h.DroppedEvents))
		ch <- prometheus.MustNewConstMetric(descDroppedBodies, prometheus.CounterValue, float64(h.DroppedBodies))
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(h.Pending))
		ch <- prometheus.MustNewConstMetric(descWriteErrors, prometheus.CounterValue, float64(h.WriteErrors))
	}
}
