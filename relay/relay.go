// Package relay assembles mjrelay: the SMTP listeners (smtpd) feed the
// durable queue (a queue.Queue: spool), whose messages the scheduler
// (deliver) hands to a Mailjet transport; the traffic log and the traffic
// store (a store.Store: inspect) observe every step. cmd/mjrelay and
// the end-to-end tests start the same thing through Start.
package relay

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/control"
	"github.com/mjrelay/mjrelay/relay/deliver"
	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/smtpd"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
	"github.com/mjrelay/mjrelay/relay/web"
)

// GC settings for a relay process: memory, of which a relay uses little
// (an index and the messages in flight), is traded for fewer collections,
// which show in the latency tail when a bulk burst allocates fast; the soft
// limit keeps the heap bounded anyway. `mjrelay serve` applies them (unless
// GOGC / GOMEMLIMIT are set) and the benchmarks do too.
const (
	GCPercent   = 400
	MemoryLimit = 1 << 30
)

// Options are the parts that tests replace; the zero value is production.
type Options struct {
	Logger *slog.Logger
	// Traffic receives events in addition to the configured traffic log.
	Traffic trafficlog.Recorder
	// Policy overrides the sender policy (default: policy.Rule over the
	// Mailjet account state).
	Policy policy.Checker
	// Target overrides the upstream transport.
	Target mailjet.Target
	// UpstreamRoots replaces the system roots for the upstream's certificate.
	UpstreamRoots *x509.CertPool
}

// Relay is a running relay.
type Relay struct {
	cfg   *config.Config
	log   *slog.Logger
	Queue queue.Queue
	Sched *deliver.Scheduler
	// Account is the cached Mailjet account state (nil when the sender
	// check does not use Mailjet).
	Account *account.Cache
	// Store is the traffic inspection store (it observes; it is not in
	// the mail's path).
	Store   store.Store
	web     *web.Server
	smtp    *smtpd.Server
	targets []mailjet.Target
	traffic *trafficlog.JSONLines
	http    *http.Server
	httpLn  net.Listener

	stopCtl   context.CancelFunc // control socket and account refresh
	ctlCtx    context.Context
	stopSched context.CancelFunc
	schedDone chan struct{}
	closeOnce sync.Once
}

// Start opens the queue, starts delivery and binds the listeners.
func Start(cfg *config.Config, o Options) (_ *Relay, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	if st, err := os.Stat(cfg.DataDir); err == nil && st.Mode().Perm()&0o077 != 0 {
		// Its files are created 0600 whatever the directory's mode; an
		// existing directory is the admin's, so it is not changed.
		log.Warn("data_dir can be listed by other users; the relay's files in it are private (0600), but consider chmod 700",
			"data_dir", cfg.DataDir, "mode", st.Mode().Perm().String())
	}
	r := &Relay{cfg: cfg, log: log, schedDone: make(chan struct{})}
	r.ctlCtx, r.stopCtl = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			r.closeAll()
		}
	}()

	var recorders trafficlog.Multi
	if r.traffic, err = OpenTraffic(cfg); err != nil {
		return nil, fmt.Errorf("traffic log: %w", err)
	}
	if r.traffic != nil {
		recorders = append(recorders, r.traffic)
	}
	if o.Traffic != nil {
		recorders = append(recorders, o.Traffic)
	}

	checker := o.Policy
	if checker == nil {
		if checker, err = r.startPolicy(); err != nil {
			return nil, err
		}
	}
	var acct policy.Account
	var acctState interface{ State() account.State }
	if r.Account != nil {
		acct, acctState = r.Account, r.Account
	}

	r.Queue, err = OpenQueue(cfg, log)
	if errors.Is(err, ErrQueueInUse) {
		return nil, fmt.Errorf("another mjrelay is already running with data_dir %s", cfg.DataDir)
	}
	if err != nil {
		return nil, err
	}

	if r.Store, err = OpenStore(cfg, log); err != nil {
		return nil, fmt.Errorf("traffic store: %w", err)
	}
	recorders = append(recorders, r.Store)
	if r.web, err = web.New(web.Deps{
		Config: cfg, Store: r.Store, Queue: liveQueue{r}, Account: acctState,
		QueueDepth: r.queueDepth, Ready: r.ready, Logger: log,
	}); err != nil {
		return nil, err
	}
	recorders = append(recorders, r.web.Recorder())

	var lns []lanes.Lane
	if lns, r.targets, err = buildLanes(cfg, o.UpstreamRoots, o.Target, log); err != nil {
		return nil, err
	}
	if cfg.Sandbox() {
		log.Warn("SANDBOX MODE: mail is accepted and recorded, and never sent; set mailjet.api_key and mailjet.secret_key (or MJ_APIKEY_PUBLIC/MJ_APIKEY_PRIVATE) to deliver through Mailjet")
	} else {
		log.Info("delivering through Mailjet", "transactional", cfg.Routes.Transactional.Transports, "bulk", cfg.Routes.Bulk.Transports,
			"smtp", fmt.Sprintf("%s:%d (%s)", cfg.Mailjet.SMTPHost, cfg.Mailjet.SMTPPort, cfg.Mailjet.SMTPTLS), "api_key", mailjet.MaskKey(cfg.Mailjet.APIKey))
	}

	r.Sched = deliver.New(r.Queue, deliver.Options{
		Lanes: lns, RetryMin: cfg.Queue.RetryMin.D(), RetryMax: cfg.Queue.RetryMax.D(),
		MaxLifetime: cfg.Queue.MaxLifetime.D(), Traffic: recorders, Logger: log,
	})
	r.Queue.Subscribe(r.Sched.Enqueue)
	var schedCtx context.Context
	schedCtx, r.stopSched = context.WithCancel(context.Background())
	go func() { defer close(r.schedDone); r.Sched.Run(schedCtx) }()
	if st := r.Queue.Stats(); st.Messages > 0 {
		log.Info("resuming the queue", "messages", st.Messages)
	}

	in := intake.New(intakeOptions(cfg, r.Store.WantsBodies()), intake.Deps{Queue: r.Queue, Policy: checker,
		Classifier: lanes.NewClassifier(classifierOptions(cfg, acct)), Flow: r.Sched, Traffic: recorders, Logger: log})
	r.smtp, err = smtpd.New(smtpOptions(cfg), smtpd.Deps{Intake: in, Traffic: recorders, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := r.smtp.Listen(); err != nil {
		return nil, err
	}
	for _, a := range r.smtp.Addrs() {
		log.Info("SMTP listening", "addr", a.String())
	}

	go func() {
		if err := control.Serve(r.ctlCtx, cfg.ControlSocket(), control.Live{Queue: r.Queue, Sched: r.Sched}); err != nil {
			log.Error("control socket", "err", err)
		}
	}()
	if cfg.HTTP.Listen != "" {
		if err := r.startHTTP(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// startPolicy builds the sender policy: allowed_from always, and the check
// against the Mailjet account's verified senders when keys are set and
// policy.sender_check is not "off". Bad keys (401) stop the start; an
// unreachable API does not (the last saved snapshot is used).
func (r *Relay) startPolicy() (policy.Checker, error) {
	cfg := r.cfg
	if cfg.Policy.SenderCheck == "off" || !cfg.HasKeys() {
		return policy.New(policyOptions(cfg), nil, r.log)
	}
	cache, err := account.New(accountOptions(cfg, r.log))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.ctlCtx, 30*time.Second)
	defer cancel()
	if err := cache.Start(ctx); err != nil {
		return nil, err
	}
	r.Account = cache
	go cache.Run(r.ctlCtx)
	return policy.New(policyOptions(cfg), cache, r.log)
}

// OpenTraffic opens the traffic log that log.traffic names (nil for "off").
func OpenTraffic(cfg *config.Config) (*trafficlog.JSONLines, error) {
	switch cfg.Log.Traffic {
	case "off":
		return nil, nil
	case "stdout":
		return trafficlog.NewJSONLines(os.Stdout), nil
	case "stderr":
		return trafficlog.NewJSONLines(os.Stderr), nil
	}
	f, err := os.OpenFile(cfg.TrafficFile(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return trafficlog.NewJSONLines(f), nil
}

// startHTTP serves the web UI, the JSON API, /metrics, /healthz, /readyz
// and the Mailjet webhook.
func (r *Relay) startHTTP() error {
	l, err := net.Listen("tcp", r.cfg.HTTP.Listen)
	if err != nil {
		return err
	}
	r.httpLn = l
	r.http = &http.Server{Handler: r.web.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: time.Minute, WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute}
	go r.http.Serve(l)
	r.log.Info("HTTP listening", "addr", l.Addr().String())
	return nil
}

// liveQueue is the web UI's view of the queue; it reaches the scheduler
// lazily, as the web server is built before it.
type liveQueue struct{ r *Relay }

func (q liveQueue) live() control.Live                          { return control.Live{Queue: q.r.Queue, Sched: q.r.Sched} }
func (q liveQueue) List() []queue.Item                          { return q.live().List() }
func (q liveQueue) Stats() queue.Stats                          { return q.live().Stats() }
func (q liveQueue) Delete(ctx context.Context, id string) error { return q.live().Delete(ctx, id) }
func (q liveQueue) Retry(ctx context.Context, id string) (int, error) {
	return q.live().Retry(ctx, id)
}

func (r *Relay) queueDepth() map[string]int {
	out := map[string]int{}
	if r.Sched != nil {
		for lane, d := range r.Sched.Depths() {
			out[lane] = d.Ready + d.Deferred + d.InFlight
		}
	}
	return out
}

// ready: listening, the queue accepts a message, and the Mailjet account
// state is known (when the sender check uses it).
func (r *Relay) ready() error {
	switch {
	case r.smtp == nil || len(r.smtp.Addrs()) == 0:
		return errors.New("SMTP is not listening")
	case r.Queue.Admit(0) != nil:
		return errors.New("the queue is full or the disk is short of space")
	case r.Account != nil && !r.Account.State().Known():
		return errors.New("the Mailjet account state is not known yet")
	}
	return nil
}

// SMTPAddrs are the bound SMTP addresses (plain first, then TLS).
func (r *Relay) SMTPAddrs() []net.Addr { return r.smtp.Addrs() }

// HTTPAddr is the bound HTTP address, or nil.
func (r *Relay) HTTPAddr() net.Addr {
	if r.httpLn == nil {
		return nil
	}
	return r.httpLn.Addr()
}

// Shutdown stops accepting mail, lets open sessions finish and delivery
// attempts complete until ctx ends (then cuts them short: they are retried
// after the next start), and closes the queue.
func (r *Relay) Shutdown(ctx context.Context) error {
	err := r.smtp.Shutdown(ctx)
	r.stopSched()
	select {
	case <-r.schedDone:
	case <-ctx.Done():
		r.Sched.Abort()
		<-r.schedDone
	}
	r.closeAll()
	return err
}

func (r *Relay) closeAll() {
	r.closeOnce.Do(func() {
		if r.stopCtl != nil {
			r.stopCtl()
		}
		if r.http != nil {
			r.http.Close()
		}
		if r.stopSched != nil {
			r.stopSched()
			<-r.schedDone
		}
		for _, t := range r.targets {
			t.Close()
		}
		if r.Queue != nil {
			r.Queue.Close()
		}
		if r.Store != nil {
			r.Store.Close()
		}
		if r.traffic != nil {
			r.traffic.Close()
		}
	})
}
