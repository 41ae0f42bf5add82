package relay_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// clusterNodes starts n relays (nodes node1…) on a fresh database of the
// shared PostgreSQL, all delivering to the first one's upstream; n = 0 is
// one embedded relay. mutate adjusts every node's configuration.
func clusterNodes(b testing.TB, n int, mutate func(*config.Config)) (envs []*env, dbURL string) {
	if n == 0 {
		return []*env{newEnv(b, mjtest.StartTLS, mutate)}, ""
	}
	dbURL = pgtest.DB(b)
	node := func(c *config.Config, i int) {
		if mutate != nil {
			mutate(c)
		}
		c.Cluster.PostgresURL = config.Secret(dbURL)
		c.Cluster.NodeName = fmt.Sprintf("node%d", i)
		c.Cluster.Lease = config.Duration(10 * time.Second)
	}
	first := newEnv(b, mjtest.StartTLS, func(c *config.Config) { node(c, 1) })
	envs = append(envs, first)
	for i := 2; i <= n; i++ {
		cfg := *first.cfg
		cfg.DataDir = filepath.Join(b.TempDir(), "data")
		node(&cfg, i)
		e := &env{t: b, cfg: &cfg, up: first.up, traffic: &trafficlog.Memory{}, lat: &latencies{}}
		e.start()
		envs = append(envs, e)
	}
	return envs, dbURL
}

func addrs(envs []*env) []string {
	var out []string
	for _, e := range envs {
		out = append(out, e.plainAddr())
	}
	return out
}

// cpu measures the CPU time of this process (relay, load clients and the
// upstream emulator) and of the PostgreSQL server (all its processes).
// With a database, it also counts the WAL PostgreSQL wrote.
type cpu struct {
	pgPort   string
	db       string
	self, pg time.Duration
	wal      string // the WAL position at the start
}

func startCPU(dbURL string) *cpu {
	c := &cpu{db: dbURL}
	if u, err := url.Parse(dbURL); err == nil {
		c.pgPort = u.Port()
	}
	c.self, c.pg = selfCPU(), postgresCPU(c.pgPort)
	if dbURL != "" {
		c.wal = c.query(`SELECT pg_current_wal_lsn()::text`)
	}
	return c
}

// query returns one value from the database ("" on error).
func (c *cpu) query(sql string, args ...any) string {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.db)
	if err != nil {
		return ""
	}
	defer conn.Close(ctx)
	var v string
	conn.QueryRow(ctx, sql, args...).Scan(&v)
	return v
}

// report adds the CPU per message of the relay process and of PostgreSQL,
// and the WAL bytes per message.
func (c *cpu) report(b *testing.B, msgs int) {
	self, pg := selfCPU()-c.self, postgresCPU(c.pgPort)-c.pg
	b.ReportMetric(float64(self.Microseconds())/float64(msgs), "relay-cpu-us/msg")
	if c.pgPort != "" {
		b.ReportMetric(float64(pg.Microseconds())/float64(msgs), "pg-cpu-us/msg")
		wal, _ := strconv.ParseFloat(c.query(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text`, c.wal), 64)
		b.ReportMetric(wal/float64(msgs), "wal-B/msg")
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU adds the user and system time of the postmaster listening on
// port and of its children (the backends and workers, which live as long
// as the pool's connections).
func postgresCPU(port string) time.Duration {
	if port == "" {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	type st struct {
		ppid  string
		ticks int64
	}
	all := map[string]st{}
	master := ""
	for _, p := range procs {
		pid := filepath.Base(p)
		stat, err := os.ReadFile(p + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		all[pid] = st{ppid: f[1], ticks: ut + stt}
		if cmd, _ := os.ReadFile(p + "/cmdline"); strings.Contains(string(cmd), "postgres\x00") && strings.Contains(string(cmd), "-p\x00"+port+"\x00") {
			master = pid
		}
	}
	if master == "" {
		return 0
	}
	ticks := all[master].ticks
	for _, s := range all {
		if s.ppid == master {
			ticks += s.ticks
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

var clusterModes = []struct {
	name  string
	nodes int
}{{"embedded", 0}, {"cluster-1-node", 1}, {"cluster-2-nodes", 2}}

// BenchmarkClusterAccept: BenchmarkAccept (10 KB, 32 sessions, sandbox
// transport, the traffic store recording records and bodies) for an
// embedded relay, one cluster node, and two nodes with the sessions split
// between them; the database runs on the same machine. Run the modes in
// one sitting: they alternate within each -count.
func BenchmarkClusterAccept(b *testing.B) {
	for _, m := range clusterModes {
		b.Run(m.name, func(b *testing.B) {
			likeServe(b)
			envs, db := clusterNodes(b, m.nodes, sandbox)
			c := startCPU(db)
			b.ResetTimer()
			took := runClientsOn(b, addrs(envs), 32, b.N)
			b.ReportMetric(float64(b.N)/took.Seconds(), "msg/s")
			c.report(b, b.N)
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkClusterRelay: BenchmarkRelay (accepted over 32 sessions,
// delivered over STARTTLS to the emulator, transactional concurrency 16)
// in the same three modes.
func BenchmarkClusterRelay(b *testing.B) {
	for _, m := range clusterModes {
		b.Run(m.name, func(b *testing.B) {
			likeServe(b)
			envs, db := clusterNodes(b, m.nodes, func(c *config.Config) { c.Routes.Transactional.Concurrency = 16 })
			up := envs[0].up
			c := startCPU(db)
			b.ResetTimer()
			start := time.Now()
			runClientsOn(b, addrs(envs), 32, b.N)
			for up.Count() < b.N {
				select {
				case <-up.Arrivals():
				case <-time.After(30 * time.Second):
					b.Fatalf("only %d of %d delivered", up.Count(), b.N)
				}
			}
			took := time.Since(start)
			b.ReportMetric(float64(b.N)/took.Seconds(), "msg/s")
			c.report(b, b.N)
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkClusterAcceptLatency: BenchmarkAcceptLatency (100 msg/s over 4
// sessions, MAIL to 250) on an embedded relay and on one cluster node.
func BenchmarkClusterAcceptLatency(b *testing.B) {
	for _, m := range clusterModes[:2] {
		b.Run(m.name, func(b *testing.B) {
			likeServe(b)
			envs, _ := clusterNodes(b, m.nodes, sandbox)
			acceptLatency(b, envs[0].plainAddr())
		})
	}
}
