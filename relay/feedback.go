package relay

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/feedback/journal"
	"github.com/mjrelay/mjrelay/relay/metrics"
	"github.com/mjrelay/mjrelay/relay/odoo"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// The Odoo feedback ([odoo]): its outbox lives beside the queue, in
// data_dir/outbox (in cluster mode in the cluster's database, where the
// webhook of any node adds and the reporter of any node claims), and is
// opened with it; the reporter is built with the other components (build)
// and runs until the relay stops.

// OutboxDir is where the embedded feedback outbox lives.
func OutboxDir(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "outbox") }

func (r *Relay) openOutbox(ctx context.Context) (err error) {
	if r.pool != nil {
		r.outbox, err = clusterOutbox(ctx, r.pool, r.log)
		return err
	}
	j, err := journal.Open(OutboxDir(r.cfg), r.log)
	if err != nil {
		return fmt.Errorf("feedback outbox: %w", err)
	}
	r.outbox = j
	return nil
}

func (r *Relay) closeOutbox(context.Context) error {
	if r.outbox == nil {
		return nil
	}
	return r.outbox.Close()
}

// newReporter builds the reporter over the outbox, the Odoo client and
// the traffic store.
func (r *Relay) newReporter(traffic trafficlog.Recorder) {
	o := r.cfg.Odoo
	client := odoo.New(OdooOptions(r.cfg))
	r.Feedback = feedback.New(feedback.Options{Hostname: r.cfg.Hostname, BounceAddress: o.BounceAddress, Report: o.Report,
		UnsubBlacklist: o.UnsubBlacklist, RetryMin: r.o.FeedbackRetryMin, Logger: r.log, Traffic: traffic},
		r.outbox, client, r.Store)
	r.log.Info("reporting to Odoo", "url", o.URL, "db", o.DB, "login", o.Login, "report", o.Report)
	if r.cfg.Webhooks.MailjetUser == "" || r.cfg.HTTP.Listen == "" {
		r.log.Warn("Mailjet's webhook is not configured ([webhooks], http.listen): only the relay's own failures reach Odoo, not Mailjet's bounces, complaints and unsubscriptions")
	}
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
	if r.Feedback == nil {
		return metrics.Feedback{}
	}
	st := r.Feedback.Status(context.Background())
	f := metrics.Feedback{Pending: st.Pending, Blocked: st.Problem != ""}
	if !st.Oldest.IsZero() {
		f.OldestSeconds = time.Since(st.Oldest).Seconds()
	}
	return f
}
