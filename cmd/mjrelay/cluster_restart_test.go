package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
)

// TestClusterRestart: a restart in place (SIGUSR2) of a cluster node under
// Odoo load, beside another node. The new process opens the cluster's
// queue as a new instance; the former one gives its claims back as it
// hands over (its instance is stopped, not dead: nobody waits for its
// lease). No connection is refused, every acknowledged mail is delivered,
// and copies beyond one come only from deliveries the handover cut short.
// Then, with PostgreSQL stopped, mail is held in the node's local spool
// and a restart is asked: the new process cannot join the cluster, so the
// restart fails and the running process goes on (holding mail locally);
// once PostgreSQL is back, every message it held is delivered once.
func TestClusterRestart(t *testing.T) {
	db := pgtest.New(t)
	cw := newClusterWorld(t, db.URL("postgres"), 2, "60s")
	p := startRelay(t, binary, []string{"serve", "--config", cw.cfgs[0]}, nil, nil)
	other := cw.node(2)
	other.waitListening(t, "node2")
	load := startOdooLoad(t, p.addr("SMTP listening"), "odoo", odooPass, "crestart")
	first := p.main()
	for range 2 {
		load.waitMore(p, 40)
		p.restart(0)
	}
	load.waitMore(p, 40)
	res := load.stop()
	acked := res.check(t)
	restarted := time.Now()
	dups := waitAllDelivered(t, cw.world, acked)
	cut := p.cutShort()
	t.Logf("%d mails acknowledged across 2 restarts, all delivered %s after the last; %d cut short, %d duplicates",
		len(acked), time.Since(restarted).Round(time.Millisecond), cut, dups)
	if dups > cut {
		t.Errorf("%d duplicates, more than the %d deliveries the handovers cut short", dups, cut)
	}

	// The other node sees node1's three instances: the two former ones
	// stopped (they gave their claims back), the last one alive.
	var nodes struct {
		Nodes []struct {
			Node, Instance string
			Alive          bool
			Stopped        *time.Time
		}
	}
	getJSON(t, "http://"+other.web(t)+"/api/nodes", &nodes)
	alive, stopped := 0, 0
	for _, n := range nodes.Nodes {
		if n.Node != "node1" {
			continue
		}
		switch {
		case n.Stopped != nil:
			stopped++
		case n.Alive:
			alive++
		}
	}
	if alive != 1 || stopped != 2 {
		t.Errorf("node1's instances: %d alive and %d stopped, want 1 and 2: %+v", alive, stopped, nodes.Nodes)
	}
	if p.main() == first {
		t.Error("no new process")
	}

	// A restart while PostgreSQL is away fails; the running process goes
	// on, holding mail locally.
	if err := db.Stop(); err != nil {
		t.Fatal(err)
	}
	send := func(token string) {
		t.Helper()
		c := dial(t, p.addr("SMTP listening"))
		defer c.Quit()
		if err := sendToken(c, token); err != nil {
			t.Fatalf("%s with PostgreSQL stopped: %v", token, err)
		}
	}
	held := map[string]bool{}
	for i := range 3 {
		send(fmt.Sprintf("held-%d", i))
		held[fmt.Sprintf("held-%d", i)] = true
	}
	running := p.main()
	p.signal(running, syscall.SIGUSR2)
	p.waitFor("the restart to fail", 2*time.Minute, func() bool { return len(p.find("restart failed: this process goes on")) > 0 })
	if p.main() != running {
		t.Fatalf("main process %d after the failed restart, want %d", p.main(), running)
	}
	send("held-3")
	held["held-3"] = true
	code, body := do(t, http.MethodGet, "http://"+p.addr("HTTP listening")+"/readyz")
	if code != 200 || !strings.Contains(body, "degraded") {
		t.Errorf("/readyz after the failed restart: %d %s", code, body)
	}
	if err := db.Start(); err != nil {
		t.Fatal(err)
	}
	if dups := waitAllDelivered(t, cw.world, held); dups != 0 {
		t.Errorf("%d duplicates of the locally held mail", dups)
	}
}
