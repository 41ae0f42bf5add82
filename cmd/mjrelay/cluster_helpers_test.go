package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
)

// clusterWorld is one upstream emulator and one database with the configs
// of n relay nodes on it (node1, node2…, each with its own data_dir).
type clusterWorld struct {
	*world
	cfgs []string
}

// newClusterWorld writes n node configs on the database at url, with the
// given lease; edits apply to every node's config as for newWorld.
func newClusterWorld(t testing.TB, url string, n int, lease string, edits ...string) *clusterWorld {
	w := newWorld(t, edits...)
	base, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cw := &clusterWorld{world: w}
	for i := 1; i <= n; i++ {
		dataDir := filepath.Join(w.dir, fmt.Sprintf("node%d", i))
		cfg := strings.Replace(string(base), fmt.Sprintf("data_dir = %q", filepath.Join(w.dir, "data")), fmt.Sprintf("data_dir = %q", dataDir), 1)
		cfg += fmt.Sprintf("[cluster]\npostgres_url = %q\nnode_name = \"node%d\"\nlease = %q\n", url, i, lease)
		p := filepath.Join(w.dir, fmt.Sprintf("node%d.toml", i))
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cw.cfgs = append(cw.cfgs, p)
	}
	return cw
}

// node starts node i (1-based).
func (cw *clusterWorld) node(i int) *proc {
	cw.t.Helper()
	return startProc(cw.t, exec.Command(binary, "serve", "--config", cw.cfgs[i-1]), 1)
}

// startAll starts every node at once (the schema's migrations race) and
// returns them once all listen.
func (cw *clusterWorld) startAll() []*proc {
	cw.t.Helper()
	ps := make([]*proc, len(cw.cfgs))
	var wg sync.WaitGroup
	for i := range ps {
		wg.Go(func() {
			cmd := exec.Command(binary, "serve", "--config", cw.cfgs[i])
			ps[i] = startProcAsync(cw.t, cmd)
		})
	}
	wg.Wait()
	for i, p := range ps {
		p.waitListening(cw.t, fmt.Sprintf("node%d", i+1))
	}
	return ps
}

// startProcAsync starts cmd like startProc, without waiting (safe from
// several goroutines: failures are reported by waitListening).
func startProcAsync(t testing.TB, cmd *exec.Cmd) *proc {
	p := &proc{cmd: cmd}
	p.start(t, 1)
	return p
}

// startLoads starts two Odoo-replay senders on each node for secs seconds
// (loads[2i] and loads[2i+1] on node i+1; tokens prefixNODE-sSENDER-…).
func startLoads(t *testing.T, ps []*proc, prefix string, secs float64) []*clusterLoad {
	var loads []*clusterLoad
	for i, p := range ps {
		for s := range 2 {
			loads = append(loads, startClusterLoad(t, p.addr, fmt.Sprintf("%s%d-s%d", prefix, i+1, s), secs, ""))
		}
	}
	return loads
}

// clusterLoad is an Odoo-replay sender (testdata/odoo_cluster_load.py) on one node.
type clusterLoad struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	ok   []string
	errs []string
	done chan struct{}
}

// startClusterLoad sends to addr for at most secs seconds (or until stop).
func startClusterLoad(t *testing.T, addr, prefix string, secs float64, class string) *clusterLoad {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(odootest.Python3(t), "testdata/odoo_cluster_load.py", host, port, "odoo", odooPass, prefix, fmt.Sprint(secs), class)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &clusterLoad{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			kind, rest, _ := strings.Cut(sc.Text(), " ")
			l.mu.Lock()
			if kind == "ok" {
				l.ok = append(l.ok, rest)
			} else {
				l.errs = append(l.errs, rest)
			}
			l.mu.Unlock()
		}
		cmd.Wait()
		close(l.done)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-l.done })
	return l
}

func (l *clusterLoad) stop() { l.cmd.Process.Signal(syscall.SIGTERM) }

// wait waits for the sender to end and returns what it was told.
func (l *clusterLoad) wait(t *testing.T) (acked []string, errs []string) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(5 * time.Minute):
		t.Fatal("the Odoo replay did not end")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.errs
}

func (l *clusterLoad) acked() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.ok) }
