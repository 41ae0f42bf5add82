package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
)

// ackedSet gathers the tokens the senders were told 250 for.
func ackedSet(loads ...*clusterLoad) (map[string]bool, []string) {
	acked := map[string]bool{}
	var errs []string
	for _, l := range loads {
		l.mu.Lock()
		for _, tok := range l.ok {
			acked[tok] = true
		}
		errs = append(errs, l.errs...)
		l.mu.Unlock()
	}
	return acked, errs
}

// TestClusterKill9UnderLoad: three nodes started at once on an empty
// database (their migrations race), Odoo replays on each; node 3 is
// killed with SIGKILL under load. Nothing acknowledged is lost: what it
// held is delivered by the other two once its lease ends, while it is
// still down; the duplicates are at most what it can have had in flight
// (its claims: the lanes' concurrency, 8 + 2). It restarts, rejoins, and
// delivers again.
func TestClusterKill9UnderLoad(t *testing.T) {
	const lease = 3 * time.Second
	cw := newClusterWorld(t, pgtest.New(t).URL("postgres"), 3, lease.String())
	cw.up.SetDataDelay(20 * time.Millisecond) // attempts last: some are in flight at the kill
	ps := cw.startAll()
	loads := startLoads(t, ps, "n", 6)
	waitUntil(t, "mail accepted by node 3", 30*time.Second, func() bool { return loads[4].acked() > 20 && loads[5].acked() > 20 })
	ps[2].kill9()
	killed := time.Now()
	for _, l := range loads {
		l.wait(t)
	}
	acked, _ := ackedSet(loads...)
	if len(acked) < 100 {
		t.Fatalf("only %d messages acknowledged", len(acked))
	}
	// Node 3 is still down: the others deliver all, its claims included.
	waitUntil(t, "every acknowledged message upstream with node 3 down", lease+60*time.Second, func() bool {
		got := tokensAt(cw.up)
		for tok := range acked {
			if got[tok] == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("%d acknowledged, all delivered %s after the kill (lease %s) with node 3 down", len(acked), time.Since(killed).Round(time.Millisecond), lease)
	dups := 0
	for _, n := range tokensAt(cw.up) {
		dups += n - 1
	}
	t.Logf("%d duplicates (in flight on node 3 at the kill)", dups)
	if dups > 10 {
		t.Errorf("%d duplicates: more than node 3 can have had in flight (the lanes' concurrency, 10)", dups)
	}

	// Node 3 rejoins: alive in the nodes table, and it delivers again.
	p3 := cw.node(3)
	var nodes struct {
		Nodes []struct {
			Node     string
			Alive    bool
			Instance string
		}
	}
	waitUntil(t, "node 3 alive again in /api/nodes", 20*time.Second, func() bool {
		getJSON(t, "http://"+ps[0].web(t)+"/api/nodes", &nodes)
		alive := 0
		for _, n := range nodes.Nodes {
			if n.Alive {
				alive++
			}
		}
		return alive == 3
	})
	again := startClusterLoad(t, p3.addr, "rejoined", 1, "")
	ok, errs := again.wait(t)
	if len(ok) == 0 || len(errs) > 0 {
		t.Fatalf("node 3 after its restart: %d accepted, errors %v", len(ok), errs)
	}
	waitUntil(t, "the rejoined node's mail upstream", 30*time.Second, func() bool {
		got := tokensAt(cw.up)
		for _, tok := range ok {
			if got[tok] == 0 {
				return false
			}
		}
		return true
	})
}

// TestClusterPostgresOutage: PostgreSQL stops (an immediate shutdown, as
// a crash) for 20 s under Odoo load on two nodes, then starts again. No
// mail is refused: the nodes hold it in their local spools (/readyz stays
// 200 and says degraded; the held-locally metric shows it), then move it
// into the database. Nothing is lost and nothing is delivered twice.
func TestClusterPostgresOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s outage")
	}
	db := pgtest.New(t)
	cw := newClusterWorld(t, db.URL("postgres"), 2, "60s")
	cw.up.SetDataDelay(5 * time.Millisecond)
	ps := cw.startAll()
	loads := startLoads(t, ps, "o", 40)
	waitUntil(t, "mail flowing", 30*time.Second, func() bool { return loads[0].acked() > 20 && loads[2].acked() > 20 })
	if err := db.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	web := "http://" + ps[0].web(t)
	waitUntil(t, "node 1 to report the degraded state", 20*time.Second, func() bool {
		code, body := do(t, http.MethodGet, web+"/readyz")
		if code != 200 {
			t.Fatalf("/readyz while degraded: %d %s (a degraded node still accepts: it stays in the load balancer)", code, body)
		}
		return strings.Contains(body, "degraded")
	})
	waitUntil(t, "mail held locally (metric)", 20*time.Second, func() bool {
		_, m := do(t, http.MethodGet, web+"/metrics")
		return metricValue(m, "mjrelay_cluster_held_locally") > 0 && metricValue(m, "mjrelay_cluster_degraded") == 1
	})
	time.Sleep(20*time.Second - time.Since(stopped))
	if err := db.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL down for %s", time.Since(stopped).Round(time.Millisecond))
	for _, l := range loads {
		l.wait(t)
	}
	acked, errs := ackedSet(loads...)
	if len(errs) > 0 {
		t.Errorf("%d sends failed (want 0 refused): %v", len(errs), errs[:min(len(errs), 5)])
	}
	waitAllDelivered(t, cw.world, acked)
	waitUntil(t, "the local spools emptied", 30*time.Second, func() bool {
		_, m := do(t, http.MethodGet, web+"/metrics")
		_, m2 := do(t, http.MethodGet, "http://"+ps[1].web(t)+"/metrics")
		return metricValue(m, "mjrelay_cluster_held_locally") == 0 && metricValue(m2, "mjrelay_cluster_held_locally") == 0
	})
	time.Sleep(2 * time.Second) // a message moved twice would go out again now
	dups := 0
	for tok, n := range tokensAt(cw.up) {
		if n > 1 {
			dups += n - 1
			t.Errorf("%s delivered %d times", tok, n)
		}
	}
	t.Logf("%d acknowledged, 0 refused, all delivered, %d duplicates", len(acked), dups)
}

// metricValue sums a metric's samples in a Prometheus text exposition.
func metricValue(text, name string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}
