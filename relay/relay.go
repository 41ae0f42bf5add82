// Package relay assembles mjrelay: the SMTP listeners (smtpd) feed the
// durable queue (a queue.Queue: spool), whose messages the scheduler
// (deliver) hands to a Mailjet transport; the traffic log, the traffic
// store (a store.Store: inspect) and the metrics observe every step. It is
// the wiring: with cmd/, the only reader of relay/config, which it turns
// into each component's options of plain values; the components run under
// a supervise.Group, in the order Start lists them. cmd/mjrelay and the
// end-to-end tests start the same thing through Start.
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
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/cluster"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/control"
	"github.com/mjrelay/mjrelay/relay/deliver"
	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/metrics"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/smtpd"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/supervise"
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
	// FeedbackRetryMin is the Odoo feedback's first retry delay (default
	// 10 s).
	FeedbackRetryMin time.Duration
}

// Relay is a running relay.
type Relay struct {
	cfg   *config.Config
	o     Options
	log   *slog.Logger
	Queue queue.Queue
	Sched *deliver.Scheduler
	// Account is the cached Mailjet account state (nil when the sender
	// check does not use Mailjet).
	Account *account.Cache
	// Store is the traffic inspection store (it observes; it is not in
	// the mail's path).
	Store store.Store
	// Feedback reports to Odoo ([odoo]); nil when it is off.
	Feedback *feedback.Reporter
	outbox   feedback.Outbox
	traffic  *trafficlog.JSONLines
	metrics  *metrics.Metrics
	lanes    []lanes.Lane
	targets  []mailjet.Target
	smtp     *smtpd.Server
	web      *web.Server
	http     *http.Server
	httpLn   net.Listener

	sup       *supervise.Group
	listening atomic.Bool // SMTP

	// Cluster mode (cluster.postgres_url): the pool, the node's queue,
	// its depths and actions for the whole cluster.
	pool       *pgxpool.Pool
	cluster    *cluster.Queue
	depths     *clusterDepths
	clusterCtl cluster.Control
}

// Start opens the queue, starts delivery and binds the listeners: the
// components of (*Relay).components, in their order.
func Start(cfg *config.Config, o Options) (*Relay, error) {
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
	// The metrics come first: every component records to them.
	node := ""
	if cfg.Clustered() {
		node = cfg.Cluster.NodeName
	}
	r := &Relay{cfg: cfg, o: o, log: log, metrics: metrics.NewNode(log, node), sup: supervise.New(log)}
	if err := r.sup.Start(context.Background(), r.components()...); err != nil {
		return nil, err
	}
	return r, nil
}

// components are the relay's parts in the order they start; Shutdown stops
// them in the reverse order: SMTP stops accepting and lets its sessions
// finish, then the scheduler lets its attempts complete (both until the
// shutdown's deadline, then they are cut short), then HTTP, the control
// socket and the account refresh stop, and the upstream connections, the
// traffic store, the queue and the traffic log close.
func (r *Relay) components() []supervise.Component {
	cs := []supervise.Component{{Name: "traffic log", Start: r.openTraffic, Stop: r.closeTraffic}}
	if r.cfg.Clustered() {
		cs = append(cs, supervise.Component{Name: "postgres", Start: r.openPool, Stop: func(context.Context) error { r.pool.Close(); return nil }})
	}
	cs = append(cs, []supervise.Component{
		{Name: "queue", Start: r.openQueue, Stop: func(context.Context) error { return r.Queue.Close() }},
		{Name: "traffic store", Start: r.openStore, Stop: func(context.Context) error { return r.Store.Close() }},
		{Name: "upstream", Start: r.openUpstream, Stop: r.closeUpstream},
	}...)
	if r.cfg.Odoo.Enabled() {
		cs = append(cs, supervise.Component{Name: "feedback outbox", Start: r.openOutbox, Stop: r.closeOutbox})
	}
	if r.o.Policy == nil && r.cfg.Policy.SenderCheck != "off" && r.cfg.HasKeys() {
		cs = append(cs, supervise.Component{Name: "mailjet account", Start: r.startAccount, Run: r.runAccount})
	}
	cs = append(cs,
		supervise.Component{Name: "wiring", Start: r.build},
		supervise.Component{Name: "control socket", Run: func(ctx context.Context) error {
			return control.Serve(ctx, r.cfg.ControlSocket(), r.queueActions())
		}})
	if r.cfg.Clustered() {
		cs = append(cs, supervise.Component{Name: "cluster housekeeping", Run: r.pruneJob})
	}
	if r.cfg.Odoo.Enabled() {
		cs = append(cs, supervise.Component{Name: "odoo feedback", Run: func(ctx context.Context) error { return r.Feedback.Run(ctx) }})
	}
	if r.cfg.HTTP.Listen != "" {
		cs = append(cs, supervise.Component{Name: "http", Start: r.listenHTTP,
			Run:  func(context.Context) error { return r.http.Serve(r.httpLn) },
			Stop: func(context.Context) error { return r.http.Close() }})
	}
	return append(cs,
		supervise.Component{Name: "scheduler", Run: func(ctx context.Context) error { r.Sched.Run(ctx); return nil },
			Abort: func() { r.Sched.Abort() }},
		supervise.Component{Name: "smtp", Start: r.listenSMTP, Stop: func(ctx context.Context) error { return r.smtp.Shutdown(ctx) }})
}

func (r *Relay) openTraffic(context.Context) (err error) {
	if r.traffic, err = openTraffic(r.cfg); err != nil {
		return fmt.Errorf("traffic log: %w", err)
	}
	return nil
}

func (r *Relay) closeTraffic(context.Context) error {
	if r.traffic == nil {
		return nil
	}
	return r.traffic.Close()
}

func (r *Relay) openPool(ctx context.Context) (err error) {
	r.pool, err = OpenPool(ctx, r.cfg, r.log)
	return err
}

func (r *Relay) openQueue(ctx context.Context) (err error) {
	if r.cfg.Clustered() {
		if r.cluster, err = openClusterQueue(ctx, r.cfg, r.pool, r.log); err == nil {
			r.Queue = r.cluster
			r.log.Info("cluster node", "node", r.cfg.Cluster.NodeName, "instance", r.cluster.PG().Instance(), "lease", r.cfg.Cluster.Lease.D())
		}
	} else {
		r.Queue, err = OpenQueue(r.cfg, r.log)
	}
	if errors.Is(err, ErrQueueInUse) {
		return fmt.Errorf("another mjrelay is already running with data_dir %s", r.cfg.DataDir)
	}
	return err
}

func (r *Relay) openStore(ctx context.Context) (err error) {
	if r.Store, err = openStore(ctx, r.cfg, r.pool, false, false, r.log); err != nil {
		return fmt.Errorf("traffic store: %w", err)
	}
	return nil
}

// openUpstream builds the lanes and their Mailjet transports.
func (r *Relay) openUpstream(context.Context) (err error) {
	cfg, log := r.cfg, r.log
	if r.lanes, r.targets, err = buildLanes(cfg, r.o.UpstreamRoots, r.o.Target, log); err != nil {
		return err
	}
	if cfg.Sandbox() {
		log.Warn("SANDBOX MODE: mail is accepted and recorded, and never sent; set mailjet.api_key and mailjet.secret_key (or MJ_APIKEY_PUBLIC/MJ_APIKEY_PRIVATE) to deliver through Mailjet")
	} else {
		log.Info("delivering through Mailjet", "transactional", cfg.Routes.Transactional.Transports, "bulk", cfg.Routes.Bulk.Transports,
			"smtp", fmt.Sprintf("%s:%d (%s)", cfg.Mailjet.SMTPHost, cfg.Mailjet.SMTPPort, cfg.Mailjet.SMTPTLS), "api_key", mailjet.MaskKey(cfg.Mailjet.APIKey))
	}
	return nil
}

func (r *Relay) closeUpstream(context.Context) error {
	var errs []error
	for _, t := range r.targets {
		errs = append(errs, t.Close())
	}
	return errors.Join(errs...)
}

// startAccount reads the Mailjet account state the sender check uses (when
// keys are set and policy.sender_check is not "off"). Bad keys (401) stop
// the start; an unreachable API does not (the last saved snapshot is used).
func (r *Relay) startAccount(ctx context.Context) (err error) {
	o := accountOptions(r.cfg, r.log)
	if o.Snapshots, err = accountSnapshots(ctx, r.pool, r.log); err != nil {
		return fmt.Errorf("Mailjet account snapshot: %w", err)
	}
	cache, err := account.New(o)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cache.Start(ctx); err != nil {
		return err
	}
	r.Account = cache
	return nil
}

// runAccount refreshes the Mailjet account state every policy.refresh: in
// cluster mode on one node only, the others following it
// (followAccount).
func (r *Relay) runAccount(ctx context.Context) error {
	if r.pool == nil {
		return r.Account.Run(ctx)
	}
	followAccount(ctx, r.pool, r.Account, r.cfg.Policy.Refresh.D(), r.log)
	return nil
}

// build wires the components over what the ones before opened: the
// scheduler, the sender policy, intake and the SMTP server, and the web
// server, all recording to the same recorders.
func (r *Relay) build(context.Context) (err error) {
	cfg, log := r.cfg, r.log
	traffic := recorders{log: r.traffic, test: r.o.Traffic, store: r.Store, metrics: r.metrics.Recorder()}.multi()
	var in *intake.Intake // held messages are checked by the intake, built below
	dopts := deliver.Options{
		Lanes: r.lanes, RetryMin: cfg.Queue.RetryMin.D(), RetryMax: cfg.Queue.RetryMax.D(),
		MaxLifetime: cfg.Queue.MaxLifetime.D(), Traffic: traffic, Logger: log,
		Gate: deliver.GateFunc(func(ctx context.Context, env queue.Envelope) error { return in.Release(ctx, env) }),
	}
	var dq deliver.Queue = r.Queue
	if r.cluster != nil {
		// The scheduler attempts only what this node claimed; the lanes'
		// concurrency and rate are the cluster's, granted by the claims.
		dq = r.cluster.Deliverer()
		dopts.Lanes = append([]lanes.Lane(nil), r.lanes...)
		for i := range dopts.Lanes {
			dopts.Lanes[i].Rate = 0
		}
	}
	var fb web.Feedback
	var fstate func() metrics.Feedback
	if cfg.Odoo.Enabled() {
		r.newReporter(traffic)
		dopts.Final, fb, fstate = r.Feedback.Failed, r.Feedback, r.feedbackState
	}
	r.Sched = deliver.New(dq, dopts)
	if r.cluster != nil {
		r.startCluster(traffic)
	}
	r.Queue.Subscribe(r.Sched.Enqueue)
	if st := r.Queue.Stats(); st.Messages > 0 {
		log.Info("resuming the queue", "messages", st.Messages)
	}

	// The account state, when the sender check uses Mailjet's.
	var acct policy.Account
	var acctState interface{ State() account.State }
	if r.Account != nil {
		acct, acctState = r.Account, r.Account
	}
	ms := metrics.State{QueueDepth: r.queueDepth, Held: r.held, Account: acctState, Store: r.Store, Feedback: fstate}
	if r.cluster != nil {
		ms.Cluster = r.cluster
	}
	r.metrics.Observe(ms)
	checker := r.o.Policy
	if checker == nil {
		if checker, err = policy.New(policyOptions(cfg), acct, log); err != nil {
			return err
		}
	}
	var flow intake.Flow = r.Sched
	if r.cluster != nil {
		flow = clusterFlow{sched: r.Sched, depths: r.depths}
	}
	in = intake.New(intakeOptions(cfg, r.Store.WantsBodies()), intake.Deps{Queue: r.Queue, Policy: checker,
		Classifier: lanes.NewClassifier(classifierOptions(cfg, acct)), Flow: flow, Traffic: traffic, Logger: log})
	if r.smtp, err = smtpd.New(smtpOptions(cfg), smtpd.Deps{Intake: in, Traffic: traffic, Logger: log}); err != nil {
		return err
	}
	if cfg.HTTP.Listen != "" {
		deps := web.Deps{Store: r.Store, Queue: r.queueActions(),
			Account: acctState, QueueDepth: r.queueDepth, Ready: r.ready, Metrics: r.metrics, Logger: log, Feedback: fb}
		if r.cluster != nil {
			deps.Degraded, deps.Nodes = r.degradedNote, r.nodes
		}
		r.web, err = web.New(webOptions(cfg), deps)
	}
	return err
}

// listenHTTP binds the web UI, the JSON API, /metrics, /healthz, /readyz
// and the Mailjet webhook.
func (r *Relay) listenHTTP(context.Context) error {
	l, err := net.Listen("tcp", r.cfg.HTTP.Listen)
	if err != nil {
		return err
	}
	r.httpLn = l
	r.http = &http.Server{Handler: r.web.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: time.Minute, WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute}
	r.log.Info("HTTP listening", "addr", l.Addr().String())
	return nil
}

func (r *Relay) listenSMTP(context.Context) error {
	if err := r.smtp.Listen(); err != nil {
		return err
	}
	for _, a := range r.smtp.Addrs() {
		r.log.Info("SMTP listening", "addr", a.String())
	}
	r.listening.Store(true)
	return nil
}

// queueActions are retry, delete and list for the control socket and the
// web: the whole cluster's in cluster mode.
func (r *Relay) queueActions() control.Queue {
	if r.cluster != nil {
		return r.clusterCtl
	}
	return control.Live{Queue: r.Queue, Sched: r.Sched}
}

func (r *Relay) queueDepth() map[string]int {
	if r.depths != nil {
		return r.depths.perLane()
	}
	out := map[string]int{}
	for lane, d := range r.Sched.Depths() {
		out[lane] = d.Ready + d.Deferred + d.InFlight + d.Held
	}
	return out
}

func (r *Relay) held() map[string]int {
	out := map[string]int{}
	for lane, d := range r.Sched.Depths() {
		out[lane] = d.Held
	}
	return out
}

// ready: listening, the queue accepts a message, and no component failed.
// An unknown Mailjet account state does not make the relay unready: it
// accepts and holds mail meanwhile (a load balancer that took every relay
// out while Mailjet's API is down would refuse all mail).
func (r *Relay) ready() error {
	switch {
	case !r.listening.Load():
		return errors.New("SMTP is not listening")
	case r.Queue.Admit(0) != nil:
		return errors.New("the queue is full or the disk is short of space")
	}
	return r.sup.Err()
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

// Err is the first failure of a component while the relay runs (the HTTP
// server, the control socket), or nil. A failure is logged and makes
// /readyz answer 503; the relay goes on accepting and delivering mail.
func (r *Relay) Err() error { return r.sup.Err() }

// Shutdown stops accepting mail, lets open sessions finish and delivery
// attempts complete until ctx ends (then cuts them short: they are retried
// after the next start), and closes the queue. It returns what went wrong
// on the way: sessions cut short, a file that did not close.
func (r *Relay) Shutdown(ctx context.Context) error { return r.sup.Stop(ctx) }
