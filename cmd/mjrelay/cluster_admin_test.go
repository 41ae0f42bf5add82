package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
)

// TestClusterOneViewFromAnyNode: messages accepted by node 1 are listed,
// retried and deleted through node 2's JSON API and through `mjrelay
// queue` with node 2's config (its control socket), and through the CLI
// with no node running on that machine (the database directly); node 2's
// /api/nodes and /nodes show both nodes alive.
func TestClusterOneViewFromAnyNode(t *testing.T) {
	cw := newClusterWorld(t, pgtest.New(t).URL("postgres"), 2, "10s",
		`retry_min = "100ms"`, `retry_min = "1h"`, `retry_max = "300ms"`, `retry_max = "2h"`)
	cw.up.SetMailFault(mjtest.Fault{Code: 451, Enh: smtp.EnhancedCode{4, 3, 0}, Message: "later"})
	ps := cw.startAll()
	a, b := ps[0], ps[1]
	c := dial(t, a.addr)
	for i := range 3 {
		if err := sendToken(c, fmt.Sprintf("view-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	web := "http://" + b.web(t)
	listed := web // where deleteVia checks
	var q struct {
		Items []struct {
			Envelope struct{ ID, Subject string }
			State    struct {
				Attempts  int
				Next      time.Time
				LastError string `json:"last_error"`
			}
		}
	}
	waitUntil(t, "node 2's API to list node 1's three messages, deferred", 20*time.Second, func() bool {
		getJSON(t, web+"/api/queue", &q)
		n := 0
		for _, it := range q.Items {
			if it.State.Attempts > 0 && strings.Contains(it.State.LastError, "451") {
				n++
			}
		}
		return len(q.Items) == 3 && n == 3
	})
	ids := []string{q.Items[0].Envelope.ID, q.Items[1].Envelope.ID, q.Items[2].Envelope.ID}

	// Retry and delete through node 2's API.
	// The next attempt is an hour away (retry_min); after the retry it is
	// another time: an hour after the new attempt, or, if that node's
	// transport is cooling down after three 451s in a row, its next probe.
	nextOf := func(id string) time.Time {
		getJSON(t, web+"/api/queue", &q)
		for _, it := range q.Items {
			if it.Envelope.ID == id {
				return it.State.Next
			}
		}
		return time.Time{}
	}
	before := nextOf(ids[0])
	if code, body := do(t, http.MethodPost, web+"/api/messages/"+ids[0]+"/retry"); code != 200 || !strings.Contains(body, `"retried": 1`) {
		t.Fatalf("retry through node 2: %d %s", code, body)
	}
	waitUntil(t, "the retried message to be attempted again", 10*time.Second, func() bool {
		next := nextOf(ids[0])
		return next.After(time.Now()) && !next.Equal(before) // due now once retried, later once attempted

	})
	deleteVia := func(what string, del func(id string) (int, string)) {
		t.Helper()
		id := ids[0]
		ids = ids[1:]
		// A message in an attempt at that instant (on this node or
		// another) keeps the delete, done when the attempt ends without
		// delivering it (the upstream answers 451 here).
		if code, out := del(id); code != 0 && code != 200 &&
			!(strings.Contains(out, "it is removed") && strings.Contains(out, "if this attempt does not deliver it")) {
			t.Fatalf("%s: delete %s: %d %s", what, id, code, out)
		}
		waitUntil(t, what+": "+id+" gone from the queue", 15*time.Second, func() bool {
			var l struct {
				Items []struct{ Envelope struct{ ID string } }
			}
			getJSON(t, listed+"/api/queue", &l)
			for _, it := range l.Items {
				if it.Envelope.ID == id {
					return false
				}
			}
			return true
		})
	}
	deleteVia("node 2's API", func(id string) (int, string) { return do(t, http.MethodDelete, web+"/api/messages/"+id) })

	// The CLI with node 2's config talks to node 2.
	out, code := runCLI(t, "queue", "--config", cw.cfgs[1], "list")
	if code != 0 || strings.Count(out, "bounce@example.com") != 2 {
		t.Fatalf("queue list through node 2 (exit %d):\n%s", code, out)
	}
	if out, code := runCLI(t, "queue", "--config", cw.cfgs[1], "retry", ids[0]); code != 0 || !strings.Contains(out, "message(s) scheduled") {
		t.Fatalf("queue retry through node 2 (exit %d): %s", code, out)
	}
	deleteVia("mjrelay queue delete on node 2", func(id string) (int, string) {
		out, code := runCLI(t, "queue", "--config", cw.cfgs[1], "delete", id)
		return code, out
	})

	var nodes struct {
		Nodes []struct {
			Node  string
			Alive bool
		}
	}
	getJSON(t, web+"/api/nodes", &nodes)
	alive := map[string]bool{}
	for _, n := range nodes.Nodes {
		alive[n.Node] = n.Alive
	}
	if !alive["node1"] || !alive["node2"] {
		t.Errorf("/api/nodes: %+v", nodes)
	}
	if code, body := do(t, http.MethodGet, web+"/nodes"); code != 200 || !strings.Contains(body, "node1") || !strings.Contains(body, "alive") {
		t.Errorf("/nodes: %d %s", code, body)
	}

	// With node 2 stopped, its CLI works on the database directly.
	b.cmd.Process.Signal(syscall.SIGTERM)
	<-b.exited
	listed = "http://" + a.web(t)
	deleteVia("mjrelay queue delete with no node running here", func(id string) (int, string) {
		out, code := runCLI(t, "queue", "--config", cw.cfgs[1], "delete", id)
		return code, out
	})
	if out, code := runCLI(t, "queue", "--config", cw.cfgs[1], "list"); code != 0 || !strings.Contains(out, "0 message(s)") {
		t.Fatalf("queue list with no node running here (exit %d):\n%s", code, out)
	}
}

// do sends a request and returns the status and body.
func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

var _ = json.Marshal

// TestClusterBulkBacklogDoesNotDelayTransactional: a mass mailing on node
// 1 leaves slowly (Mailjet answers each DATA after 100 ms; the bulk lane
// has 2 deliveries at a time in the whole cluster); a transactional mail
// accepted by node 2 meanwhile goes out while most of the backlog still
// waits, not after it.
func TestClusterBulkBacklogDoesNotDelayTransactional(t *testing.T) {
	cw := newClusterWorld(t, pgtest.New(t).URL("postgres"), 2, "10s")
	cw.up.SetDataDelay(100 * time.Millisecond)
	ps := cw.startAll()
	bulk := []*clusterLoad{startClusterLoad(t, ps[0].addr, "bulk-a", 3, "bulk"), startClusterLoad(t, ps[0].addr, "bulk-b", 3, "bulk")}
	for _, l := range bulk {
		l.wait(t)
	}
	acked, errs := ackedSet(bulk...)
	if len(acked) < 100 || len(errs) > 0 {
		t.Fatalf("bulk backlog: %d accepted, errors %v", len(acked), errs)
	}
	c := dial(t, ps[1].addr)
	if err := sendToken(c, "password-reset"); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	waitUntil(t, "the transactional mail upstream", 30*time.Second, func() bool { return tokensAt(cw.up)["password-reset"] > 0 })
	sent := 0
	for tok := range tokensAt(cw.up) {
		if acked[tok] {
			sent++
		}
	}
	t.Logf("the transactional mail went out with %d of %d bulk messages delivered", sent, len(acked))
	if sent > len(acked)/2 {
		t.Errorf("the transactional mail waited for %d of %d bulk messages", sent, len(acked))
	}
}
