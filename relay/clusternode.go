package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/relay/cluster"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/deliver"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pgqueue"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
	"github.com/mjrelay/mjrelay/relay/web"
)

// Cluster mode's wiring: one pool per process, the node's queue (the
// cluster's and the local spool), its actions for the whole cluster, and
// the cluster-wide periodic jobs.

// putTimeout is how long a Put waits for PostgreSQL before the message is
// held in the local spool instead.
const putTimeout = 3 * time.Second

// OpenPool connects to the cluster's database (cluster.postgres_url).
func OpenPool(ctx context.Context, cfg *config.Config, log *slog.Logger) (*pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return pg.Open(ctx, pg.Options{URL: cfg.Cluster.PostgresURL.Reveal(), Password: cfg.Cluster.Password.Reveal(),
		AppName: "mjrelay " + cfg.Cluster.NodeName, Logger: log})
}

// pgqueueOptions are the cluster queue's options: the lanes' concurrency
// and rate hold for the cluster as a whole.
func pgqueueOptions(cfg *config.Config, admin bool, log *slog.Logger) pgqueue.Options {
	o := pgqueue.Options{Node: cfg.Cluster.NodeName, Lease: cfg.Cluster.Lease.D(), Admin: admin,
		MaxMessages: cfg.Queue.MaxMessages, MaxBytes: cfg.Queue.MaxBytes, Logger: log}
	for _, r := range []struct {
		class string
		r     config.Route
	}{{config.ClassTransactional, cfg.Routes.Transactional}, {config.ClassBulk, cfg.Routes.Bulk}} {
		o.Lanes = append(o.Lanes, pgqueue.Lane{Class: r.class, Concurrency: r.r.Concurrency, Rate: r.r.Rate})
	}
	return o
}

// openClusterQueue opens the node's queue: the cluster's on pool, and the
// local spool in data_dir for when the database is away.
func openClusterQueue(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, log *slog.Logger) (*cluster.Queue, error) {
	local, err := spool.Open(cfg.QueueDir(), spool.Options{
		MaxBytes: cfg.Queue.MaxBytes, MaxMessages: cfg.Queue.MaxMessages, MinFreeBytes: cfg.Queue.MinFreeBytes, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	pq, err := pgqueue.Open(ctx, pool, pgqueueOptions(cfg, false, log))
	if err != nil {
		local.Close()
		return nil, fmt.Errorf("cluster queue at %s: %w", pg.Where(cfg.Cluster.PostgresURL.Reveal()), err)
	}
	if n := local.Stats().Messages; n > 0 {
		log.Info("messages held in the local spool are moved into PostgreSQL", "messages", n)
	}
	return cluster.New(pq, local, pool, putTimeout, log), nil
}

// OpenClusterAdmin opens the cluster's queue for `mjrelay queue` with no
// node running here: the actions reach the whole cluster (a message a
// live node holds is deleted by that node). closeAll closes it.
func OpenClusterAdmin(ctx context.Context, cfg *config.Config, traffic trafficlog.Recorder) (_ cluster.Control, closeAll func(), err error) {
	pool, err := OpenPool(ctx, cfg, nil)
	if err != nil {
		return cluster.Control{}, nil, err
	}
	pq, err := pgqueue.Open(ctx, pool, pgqueueOptions(cfg, true, nil))
	if err != nil {
		pool.Close()
		return cluster.Control{}, nil, err
	}
	return cluster.Control{Queue: pq, PG: pq, Traffic: traffic}, func() { pq.Close(); pool.Close() }, nil
}

// clusterDepths reads the cluster's queue depths per lane at most once a
// second (the metrics, the UI and the dashboard all ask), plus what this
// node holds in its local spool.
type clusterDepths struct {
	q    *cluster.Queue
	log  *slog.Logger
	mu   sync.Mutex
	at   time.Time
	last map[string]pgqueue.Depth
}

func (d *clusterDepths) depths() map[string]pgqueue.Depth {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Since(d.at) < time.Second && d.last != nil {
		return d.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := d.q.PG().Depths(ctx)
	if err != nil {
		if d.last == nil {
			d.last = map[string]pgqueue.Depth{}
		}
		return d.last // the database is away: the last figures
	}
	d.last, d.at = m, time.Now()
	return m
}

// perLane is ready + deferred + in flight + held per lane, cluster-wide,
// plus the messages held locally (counted in their lane).
func (d *clusterDepths) perLane() map[string]int {
	out := map[string]int{}
	for lane, v := range d.depths() {
		out[lane] = v.Ready + v.Deferred + v.InFlight + v.Held
	}
	d.local(out, func(queue.Item) bool { return true })
	return out
}

// held is the messages per lane that wait for their sender check,
// cluster-wide, plus those in the local spool.
func (d *clusterDepths) held() map[string]int {
	out := map[string]int{}
	for lane, v := range d.depths() {
		out[lane] = v.Held
	}
	d.local(out, func(it queue.Item) bool { return it.Held() != "" })
	return out
}

// local counts the messages of the local spool that count selects, in
// their lane.
func (d *clusterDepths) local(out map[string]int, count func(queue.Item) bool) {
	for _, it := range d.q.LocalList() {
		if !count(it) {
			continue
		}
		lane := it.Envelope.Class
		if lane != config.ClassBulk {
			lane = config.ClassTransactional
		}
		out[lane]++
	}
}

// clusterPart is what a delivery adds in cluster mode: the node's queue,
// the cluster's depths, and the queue actions for the whole cluster.
type clusterPart struct {
	cq     *cluster.Queue
	depths *clusterDepths
	ctl    cluster.Control
}

// startCluster wires what a node adds to a delivery: deletions asked by
// other nodes go to its scheduler, and the heartbeat reports the node's
// addresses and what it holds locally.
func (r *Relay) startCluster(cq *cluster.Queue, sched *deliver.Scheduler) *clusterPart {
	cq.PG().OnDelete(func(id string) {
		if err := sched.Delete(context.Background(), id); err != nil {
			r.log.Info("delete asked by another node", "id", id, "result", err)
		}
	})
	cq.PG().Report(func() pgqueue.Info {
		info := pgqueue.Info{"held_locally": cq.HeldLocally()}
		if deg, since := cq.Degraded(); deg {
			info["degraded_since"] = since
		}
		if a := r.HTTPAddr(); a != nil {
			info["http"] = a.String()
		}
		if r.smtp != nil && r.listening.Load() {
			var addrs []string
			for _, a := range r.smtp.Addrs() {
				addrs = append(addrs, a.String())
			}
			info["smtp"] = addrs
		}
		return info
	})
	return &clusterPart{cq: cq, depths: &clusterDepths{q: cq, log: r.log},
		ctl: cluster.Control{Queue: cq, PG: cq.PG(), Sched: sched, Traffic: r.recs}}
}

// clusterPart is the open delivery's cluster part (nil in embedded mode,
// and while the queue is handed over to or from another process).
func (r *Relay) clusterPart() *clusterPart {
	if d := r.cur.Load(); d != nil {
		return d.cluster
	}
	return nil
}

// clusterLanes are the scheduler's lanes in cluster mode: it attempts only
// what this node claimed, and the lanes' rate is the cluster's, granted by
// the claims.
func clusterLanes(ls []lanes.Lane) []lanes.Lane {
	out := append([]lanes.Lane(nil), ls...)
	for i := range out {
		out[i].Rate = 0
	}
	return out
}

// openQueue opens this process's queue: the spool in data_dir, or in
// cluster mode the node's queue (the cluster's and the local spool).
func (r *Relay) openQueue(ctx context.Context, cfg *config.Config) (queue.Queue, error) {
	if !cfg.Clustered() {
		return OpenQueue(cfg, r.log)
	}
	cq, err := openClusterQueue(ctx, cfg, r.pool, r.log)
	if err != nil {
		return nil, err
	}
	r.log.Info("cluster node", "node", cfg.Cluster.NodeName, "instance", cq.PG().Instance(), "lease", cfg.Cluster.Lease.D())
	return cq, nil
}

// pruneJob keeps the queue's tombstones and node rows for a week, on one
// node of the cluster.
func (r *Relay) pruneJob(ctx context.Context) error {
	return cluster.Singleton{Pool: r.pool, Name: "queue housekeeping", Every: time.Hour, Retry: 5 * time.Minute, Log: r.log}.
		Run(ctx, func(ctx context.Context) error {
			c := r.clusterPart()
			if c == nil {
				return errors.New("the queue is being handed over")
			}
			return c.cq.PG().Prune(ctx, 7*24*time.Hour)
		})
}

// nodeState is the node's local hold for the metrics.
type nodeState struct{ r *Relay }

func (n nodeState) HeldLocally() int {
	if c := n.r.clusterPart(); c != nil {
		return c.cq.HeldLocally()
	}
	return 0
}

func (n nodeState) Degraded() (bool, time.Time) {
	if c := n.r.clusterPart(); c != nil {
		return c.cq.Degraded()
	}
	return false, time.Time{}
}

// degradedNote is what /readyz adds while mail is held locally ("" when
// not degraded).
func (r *Relay) degradedNote() string {
	c := r.clusterPart()
	if c == nil {
		return ""
	}
	deg, since := c.cq.Degraded()
	held := c.cq.HeldLocally()
	if !deg && held == 0 {
		return ""
	}
	if !deg {
		return fmt.Sprintf("moving %d locally held messages into PostgreSQL", held)
	}
	return fmt.Sprintf("PostgreSQL unreachable since %s; %d messages held locally (accepted and durable)",
		since.UTC().Format(time.RFC3339), held)
}

var _ queue.Queue = (*cluster.Queue)(nil)

// nodes lists the cluster's nodes for the web's nodes page.
func (r *Relay) nodes(ctx context.Context) ([]web.Node, error) {
	c := r.clusterPart()
	if c == nil {
		return nil, errors.New("the queue is being handed over between two processes of this node: try again")
	}
	ns, err := c.cq.PG().Nodes(ctx)
	out := make([]web.Node, len(ns))
	for i, n := range ns {
		out[i] = web.Node{Node: n.Node, Instance: n.Instance, Started: n.Started, Heartbeat: n.Heartbeat,
			Stopped: n.Stopped, Alive: n.Alive, Holds: n.Holds, Info: n.Info}
	}
	return out, err
}
