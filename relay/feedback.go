package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/feedback/journal"
	"github.com/mjrelay/mjrelay/relay/metrics"
	"github.com/mjrelay/mjrelay/relay/odoo"
)

// The Odoo feedback ([odoo]): its outbox lives beside the queue, in
// data_dir/outbox (in cluster mode in the cluster's database, where the
// webhook of any node adds and the reporter of any node claims), and is
// opened with it; the reporter is built with the other components (build)
// and runs until the relay stops.

// OutboxDir is where the embedded feedback outbox lives.
func OutboxDir(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "outbox") }

// openOutbox opens the outbox, with the queue (a process that hands its
// queue over hands the outbox over too): in cluster mode the cluster's, in
// PostgreSQL on the relay's pool.
func (r *Relay) openOutbox(ctx context.Context, cfg *config.Config) (feedback.Outbox, error) {
	if r.pool != nil {
		return clusterOutbox(ctx, r.pool, r.log)
	}
	j, err := journal.Open(OutboxDir(cfg), r.log)
	if err != nil {
		return nil, fmt.Errorf("feedback outbox: %w", err)
	}
	return j, nil
}

// newReporter builds the reporter over the outbox, the Odoo client and
// the traffic store.
func (r *Relay) newReporter(out feedback.Outbox) *feedback.Reporter {
	cfg := r.config()
	o := cfg.Odoo
	rep := feedback.New(feedback.Options{Hostname: cfg.Hostname, BounceAddress: o.BounceAddress, Report: o.Report,
		UnsubBlacklist: o.UnsubBlacklist, RetryMin: r.o.FeedbackRetryMin, Logger: r.log, Traffic: r.recs},
		out, r.odoo, r.Store)
	r.log.Info("reporting to Odoo", "url", o.URL, "db", o.DB, "login", o.Login, "report", o.Report)
	if cfg.Webhooks.MailjetUser == "" || cfg.HTTP.Listen == "" {
		r.log.Warn("Mailjet's webhook is not configured ([webhooks], http.listen): only the relay's own failures reach Odoo, not Mailjet's bounces, complaints and unsubscriptions")
	}
	return rep
}

// Feedback is the reporter to Odoo ([odoo]): nil when it is off, or while
// the outbox is not open here (handed over to another process).
func (r *Relay) Feedback() *feedback.Reporter {
	if d := r.cur.Load(); d != nil {
		return d.reporter
	}
	return nil
}

// liveFeedback is the web's view of the reporter open now: while the
// outbox changes hands, Mailjet's events are refused (Mailjet sends them
// again) rather than lost.
type liveFeedback struct{ r *Relay }

func (l liveFeedback) Mailjet(ctx context.Context, evs []webhook.Event) error {
	if rep := l.r.Feedback(); rep != nil {
		return rep.Mailjet(ctx, evs)
	}
	return errors.New("the feedback outbox is being handed over to another relay process")
}

func (l liveFeedback) Status(ctx context.Context) feedback.Status {
	if rep := l.r.Feedback(); rep != nil {
		return rep.Status(ctx)
	}
	return feedback.Status{}
}

// OdooOptions are the Odoo client's options from [odoo] (the API key
// leaves its config.Secret here).
func OdooOptions(cfg *config.Config) odoo.Options {
	o := cfg.Odoo
	return odoo.Options{URL: o.URL, DB: o.DB, Login: o.Login, APIKey: o.APIKey.Reveal(),
		HTTP: &http.Client{Timeout: o.Timeout.D()}}
}

// feedbackState is the metrics' view of the reporter (nil when it is off).
func (r *Relay) feedbackState() metrics.Feedback {
	rep := r.Feedback()
	if rep == nil {
		return metrics.Feedback{}
	}
	st := rep.Status(context.Background())
	f := metrics.Feedback{Pending: st.Pending, Blocked: st.Problem != ""}
	if !st.Oldest.IsZero() {
		f.OldestSeconds = time.Since(st.Oldest).Seconds()
	}
	return f
}
