// Package relay assembles mjrelay: the SMTP listeners (smtpd) feed the
// durable queue (a queue.Queue: spool), whose messages the scheduler
// (deliver) hands to a Mailjet transport; the traffic log, the traffic
// store (a store.Store: inspect) and the metrics observe every step. It is
// the wiring: with cmd/, the only reader of relay/config, which it turns
// into each component's options of plain values; the components run under
// a supervise.Group, in the order Start lists them. cmd/mjrelay and the
// end-to-end tests start the same thing through Start.
//
// A running relay changes without closing a listener: Reload applies a
// new configuration (reload.go), and Restart hands the listeners and the
// queue over to a new process started from the binary on disk
// (handover.go), through the process it runs in (Options.Process).
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
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/metrics"
	"github.com/mjrelay/mjrelay/relay/odoo"
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

// queueWait bounds how long a message waits for the queue while it is
// handed over between processes (the client waits for its reply; Odoo
// gives up after 60 s).
const queueWait = 20 * time.Second

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
	// Process is the process the relay runs in (relay/handover): the
	// listeners it binds and the hand-over to a new process. Nil: the
	// relay binds its own listeners and cannot be restarted in place.
	Process Process
	// Load reads the configuration again, for Reload (nil: no reload).
	Load func() (*config.Config, error)
	// Level is the process log's level, which a reload sets from
	// log.level (nil: left as it is).
	Level *slog.LevelVar
	// FeedbackRetryMin is the Odoo feedback's first retry delay (default
	// 10 s).
	FeedbackRetryMin time.Duration
}

// Process is what the relay needs of the process it runs in (a
// *handover.Process).
type Process interface {
	// Listen returns the listener named name ("smtp", "smtps", "http")
	// for addr: one a former process or systemd passed on, or a new one.
	Listen(name, addr string) (net.Listener, error)
	// HasParent tells whether a former relay process started this one to
	// take over from it.
	HasParent() bool
	// WaitForParent returns once the former process has exited (at once
	// without one), or with ctx's error.
	WaitForParent(ctx context.Context) error
	// Upgrade starts a new process from the binary on disk and returns
	// once it is ready, or with why it failed.
	Upgrade() error
	// Notify tells the service manager the relay's state (notify's fields).
	Notify(fields ...string)
}

// Relay is a running relay.
type Relay struct {
	cfg atomic.Pointer[config.Config] // as applied (Reload)
	o   Options
	log *slog.Logger
	// Queue is what the intake stores into: the queue, or, while it is
	// handed over to or from another process, a stand-in (queue.Switch).
	Queue *queue.Switch
	cur   atomic.Pointer[delivery]
	// intake is the one in force (Reload replaces it); the scheduler
	// checks held mail through it (release).
	intake atomic.Pointer[intake.Intake]
	// Account is the cached Mailjet account state (nil when the sender
	// check does not use Mailjet).
	Account *account.Cache
	// Store is the traffic inspection store (it observes; it is not in
	// the mail's path).
	Store   store.Store
	odoo    *odoo.Client // [odoo]; nil when the feedback is off
	traffic *trafficlog.JSONLines
	recs    trafficlog.Multi
	metrics *metrics.Metrics
	smtp    *smtpd.Server
	web     atomic.Pointer[web.Server]
	http    *http.Server
	httpLn  net.Listener

	// Guarded by reloadMu: what a reload replaces.
	reloadMu sync.Mutex
	lanes    []lanes.Lane
	targets  []mailjet.Target

	sup       *supervise.Group
	listening atomic.Bool // SMTP
	draining  atomic.Bool // stopping, or handing over to a new process
	handover  handoverState
	control   controlSocket

	// pool is cluster mode's (cluster.postgres_url; nil in embedded mode):
	// the queue (each delivery's cluster.Queue) and the singletons use it.
	pool *pgxpool.Pool
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
	r := &Relay{o: o, log: log, metrics: metrics.NewNode(log, node), sup: supervise.New(log), Queue: queue.NewSwitch(nil, queueWait)}
	r.cfg.Store(cfg)
	r.handover.replaced = make(chan struct{})
	r.control.r = r
	if err := r.sup.Start(context.Background(), r.components()...); err != nil {
		return nil, err
	}
	return r, nil
}

// config is the configuration in force.
func (r *Relay) config() *config.Config { return r.cfg.Load() }

// components are the relay's parts in the order they start; Shutdown stops
// them in the reverse order: SMTP stops accepting and lets its sessions
// finish, the control socket and HTTP stop, the scheduler lets
// its attempts complete (until the shutdown's deadline, then they are cut
// short) and the queue closes, the account refresh stops, and the upstream
// connections, the traffic store and the traffic log close.
//
// Everything that can fail comes before the queue, so that a new process
// taking over from a running one fails, if it does, before it takes the
// queue; until then the running one goes on as if nothing happened.
func (r *Relay) components() []supervise.Component {
	cfg := r.config()
	cs := []supervise.Component{{Name: "traffic log", Start: r.openTraffic, Stop: r.closeTraffic}}
	if cfg.Clustered() {
		cs = append(cs, supervise.Component{Name: "postgres", Start: r.openPool, Stop: func(context.Context) error { r.pool.Close(); return nil }})
	}
	cs = append(cs,
		supervise.Component{Name: "traffic store", Start: r.openStore, Stop: func(context.Context) error { return r.Store.Close() }},
		supervise.Component{Name: "upstream", Start: r.openUpstream, Stop: r.closeUpstream},
	)
	if r.o.Policy == nil && cfg.Policy.SenderCheck != "off" && cfg.HasKeys() {
		cs = append(cs, supervise.Component{Name: "mailjet account", Start: r.startAccount, Run: r.runAccount})
	}
	cs = append(cs, supervise.Component{Name: "wiring", Start: r.build})
	if cfg.Clustered() {
		cs = append(cs, supervise.Component{Name: "cluster housekeeping", Run: r.pruneJob})
	}
	if r.o.Process != nil && r.o.Process.HasParent() {
		cs = append(cs, r.handoverIntake())
	}
	cs = append(cs, supervise.Component{Name: "queue", Start: r.openDelivery, Stop: r.closeDelivery})
	if cfg.HTTP.Listen != "" {
		cs = append(cs, supervise.Component{Name: "http", Start: r.listenHTTP,
			Run:  func(context.Context) error { return r.http.Serve(r.httpLn) },
			Stop: func(context.Context) error { return r.http.Close() }})
	}
	// SMTP comes last: it stops accepting first. A new process that
	// fails to bind it after it took the control socket's name gives it
	// back (takeBack).
	return append(cs,
		supervise.Component{Name: "control socket", Start: r.control.start, Run: r.control.run, Stop: r.control.stop},
		supervise.Component{Name: "smtp", Start: r.listenSMTP, Stop: func(ctx context.Context) error { return r.smtp.Shutdown(ctx) }})
}

func (r *Relay) openTraffic(context.Context) (err error) {
	if r.traffic, err = openTraffic(r.config()); err != nil {
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
	r.pool, err = openNodePool(ctx, r.config(), r.log)
	return err
}

func (r *Relay) openStore(ctx context.Context) (err error) {
	if r.Store, err = openStore(ctx, r.config(), r.pool, false, false, r.log); err != nil {
		return fmt.Errorf("traffic store: %w", err)
	}
	return nil
}

// openUpstream builds the lanes and their Mailjet transports.
func (r *Relay) openUpstream(context.Context) (err error) {
	cfg, log := r.config(), r.log
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
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
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
	o := accountOptions(r.config(), r.log)
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
	followAccount(ctx, r.pool, r.Account, r.config().Policy.Refresh.D(), r.log)
	return nil
}

// build wires the components over what the ones before opened: the
// sender policy, intake and the SMTP server, and the web server, all
// recording to the same recorders. The intake stores into r.Queue, which
// has its queue once the queue component has opened it.
func (r *Relay) build(context.Context) (err error) {
	cfg, log := r.config(), r.log
	r.recs = recorders{log: r.traffic, test: r.o.Traffic, store: r.Store, metrics: r.metrics.Recorder()}.multi()
	var fstate func() metrics.Feedback
	if cfg.Odoo.Enabled() {
		r.odoo = odoo.New(OdooOptions(cfg))
		fstate = r.feedbackState
	}
	ms := metrics.State{QueueDepth: r.queueDepth, Held: r.held, Account: r.accountState(), Store: r.Store, Feedback: fstate}
	if cfg.Clustered() {
		ms.Cluster = nodeState{r}
	}
	r.metrics.Observe(ms)
	in, err := r.newIntake(cfg)
	if err != nil {
		return err
	}
	r.intake.Store(in)
	if r.smtp, err = smtpd.New(smtpOptions(cfg), smtpd.Deps{Intake: in, Traffic: r.recs, Logger: log, Listen: r.listen}); err != nil {
		return err
	}
	if cfg.HTTP.Listen != "" {
		var w *web.Server
		if w, err = r.newWeb(cfg); err != nil {
			return err
		}
		r.web.Store(w)
	}
	return nil
}

// accountState is the account state for the metrics and the web, when
// the sender check uses Mailjet's.
func (r *Relay) accountState() interface{ State() account.State } {
	if r.Account == nil {
		return nil
	}
	return r.Account
}

// newIntake builds the intake for cfg: its sender policy, classifier and
// options, over r.Queue and the running scheduler's pacing.
func (r *Relay) newIntake(cfg *config.Config) (*intake.Intake, error) {
	var acct policy.Account
	if r.Account != nil {
		acct = r.Account
	}
	checker := r.o.Policy
	if checker == nil {
		var err error
		if checker, err = policy.New(policyOptions(cfg), acct, r.log); err != nil {
			return nil, err
		}
	}
	return intake.New(intakeOptions(cfg, r.Store.WantsBodies()), intake.Deps{Queue: r.Queue, Policy: checker,
		Classifier: lanes.NewClassifier(classifierOptions(cfg, acct)), Flow: flow{r}, Traffic: r.recs, Logger: r.log}), nil
}

func (r *Relay) newWeb(cfg *config.Config) (*web.Server, error) {
	d := web.Deps{Store: r.Store, Queue: liveQueue{r}, Account: r.accountState(),
		QueueDepth: r.queueDepth, Ready: r.ready, Metrics: r.metrics, Logger: r.log}
	if r.odoo != nil {
		d.Feedback = liveFeedback{r}
	}
	if cfg.Clustered() {
		d.Degraded, d.Nodes = r.degradedNote, r.nodes
	}
	return web.New(webOptions(cfg), d)
}

// listen binds a listener through the process (inherited ones first).
func (r *Relay) listen(name, addr string) (net.Listener, error) {
	if r.o.Process != nil {
		return r.o.Process.Listen(name, addr)
	}
	return net.Listen("tcp", addr)
}

// listenHTTP binds the web UI, the JSON API, /metrics, /healthz, /readyz
// and the Mailjet webhook.
func (r *Relay) listenHTTP(context.Context) error {
	l, err := r.listen("http", r.config().HTTP.Listen)
	if err != nil {
		return err
	}
	r.httpLn = l
	r.http = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.web.Load().Handler().ServeHTTP(w, req) // a reload may replace the server
	}), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute}
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

// ready: listening and not draining, the queue accepts a message, and no
// component failed. An unknown Mailjet account state does not make the
// relay unready: it accepts and holds mail meanwhile (a load balancer that
// took every relay out while Mailjet's API is down would refuse all mail).
func (r *Relay) ready() error {
	switch {
	case !r.listening.Load():
		return errors.New("SMTP is not listening")
	case r.draining.Load():
		return errors.New("draining: this process is stopping, or handing over to a new one")
	case r.cur.Load() == nil:
		return errors.New("the queue is not open (it is being handed over between processes)")
	case r.cur.Load().q.Admit(0) != nil:
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

// Shutdown stops accepting mail (/readyz says so at once), lets open
// sessions finish and delivery attempts complete until ctx ends (then cuts
// them short: they are retried after the next start), and closes the
// queue. It returns what went wrong on the way: sessions cut short, a file
// that did not close. After a restart handed everything over, it only
// lets this process's sessions finish.
func (r *Relay) Shutdown(ctx context.Context) error {
	r.draining.Store(true)
	return r.sup.Stop(ctx)
}
