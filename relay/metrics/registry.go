package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Metrics is the relay's registry and what feeds it.
type Metrics struct {
	reg     *prometheus.Registry
	node    prometheus.Registerer // reg, with the node label in cluster mode
	m       *metrics
	handler http.Handler
}

// New builds the registry with the event and webhook series and the Go and
// process collectors; log (nil: nowhere) gets the errors of a scrape.
func New(log *slog.Logger) *Metrics { return NewNode(log, "") }

// NewNode is New for a node of a cluster: the series of this process
// (events, webhook, Go and process) carry the label node="name", so that
// the nodes' counters add up; the queue depths, read from the database,
// are the cluster's and carry none. An empty name is New.
func NewNode(log *slog.Logger, name string) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	var node prometheus.Registerer = reg
	if name != "" {
		node = prometheus.WrapRegistererWith(prometheus.Labels{"node": name}, reg)
	}
	return &Metrics{reg: reg, node: node, m: newMetrics(node),
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{log.With("component", "metrics")}})}
}

// Recorder derives the series of the relay's events: add it to the
// relay's recorders. Record only touches atomic counters.
func (m *Metrics) Recorder() trafficlog.Recorder { return m.m }

// State is what is read at scrape time; each part is optional.
type State struct {
	// QueueDepth returns the messages per lane ("transactional", "bulk"):
	// ready + deferred + in flight + held.
	QueueDepth func() map[string]int
	// Held returns the messages per lane held until their sender can be
	// checked (accepted while the Mailjet account state was unknown).
	Held func() map[string]int
	// Account is the Mailjet account cache (nil when the sender check does
	// not use Mailjet).
	Account interface{ State() account.State }
	// Store is the traffic store, for its health counters.
	Store interface{ Health() store.Health }
	// Feedback returns the Odoo feedback's state (nil: it is off).
	Feedback func() Feedback
	// Cluster is a cluster node's local hold (nil in embedded mode).
	Cluster Node
}

// Node is what a cluster node reports of its local hold.
type Node interface {
	// HeldLocally is how many messages its local spool holds.
	HeldLocally() int
	// Degraded: PostgreSQL is unreachable, new mail is held locally.
	Degraded() (bool, time.Time)
}

// Observe adds the series read from s at scrape time; call it once, when
// the scheduler (whose depths it reads) is built.
func (m *Metrics) Observe(s State) {
	m.reg.MustRegister(&stateCollector{d: s})
	if s.Cluster != nil {
		m.node.MustRegister(&nodeCollector{n: s.Cluster})
	}
	if s.Feedback != nil {
		m.reg.MustRegister(feedbackCollector(s.Feedback))
	}
}

// ServeHTTP serves the registry in Prometheus' text format.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.handler.ServeHTTP(w, r) }

// WebhookRequest counts a Mailjet webhook request by its HTTP status.
func (m *Metrics) WebhookRequest(code int) {
	m.m.webhookReq.WithLabelValues(strconv.Itoa(code)).Inc()
}

// WebhookEvent counts a Mailjet webhook event (a known event name, or
// "unknown") by its result: accepted, dropped, or why it was skipped
// (malformed, unknown_event, no_id).
func (m *Metrics) WebhookEvent(event, result string) {
	m.m.webhook.WithLabelValues(event, result).Inc()
}

// slogPrinter adapts promhttp's error log to slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn(fmt.Sprint(v...)) }
