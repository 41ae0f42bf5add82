package relay_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestClusterHeldMail: two nodes on one database start with the Mailjet
// REST API down (the account state unknown on both). Mail accepted by
// node b is held in the database: node a lists it held, and both count
// it once in the cluster's held depth. Once the API answers, the node
// that knows the state releases it: the verified senders' mail is
// delivered once in the cluster, the unverified one fails once with the
// reply the relay gives when the state is known.
func TestClusterHeldMail(t *testing.T) {
	api := account(t)
	api.SetDown(true)
	url := pgtest.DB(t)
	node := func(name string) *env {
		return newEnv(t, mjtest.StartTLS, func(c *config.Config) {
			withAPI(api, "enforce")(c)
			c.Cluster.PostgresURL = config.Secret(url)
			c.Cluster.NodeName = name
			c.Cluster.Lease = config.Duration(10 * time.Second)
			c.HTTP.Listen = "127.0.0.1:0"
		})
	}
	a, b := node("a"), node("b")
	if a.r.Account.State().Known() || b.r.Account.State().Known() {
		t.Fatal("the account state is known with the API down")
	}

	c := b.client()
	const n = 3
	for i := range n - 1 {
		msg := fmt.Sprintf("From: john@example.com\r\nTo: c@example.org\r\nSubject: held %d\r\n\r\nhi\r\n", i)
		if _, err := send(c, "bounce@example.com", []string{"c@example.org"}, msg); err != nil {
			t.Fatalf("verified sender with the API down: %v", err)
		}
	}
	const stranger = "From: stranger@example.net\r\nTo: c@example.org\r\nSubject: unverified\r\n\r\nhi\r\n"
	if _, err := send(c, "bounce@example.net", []string{"c@example.org"}, stranger); err != nil {
		t.Fatalf("unverified sender with the API down: %v", err)
	}
	c.Quit()

	// One view: node a, which accepted none of them, lists them held.
	a.waitFor("node a to list 3 held messages", func() bool {
		held := 0
		for _, it := range a.r.Queue.List() {
			if strings.Contains(it.Held(), "Mailjet account state is not known") {
				held++
			}
		}
		return held == n
	})
	for _, e := range []*env{a, b} {
		e.waitFor("each node's held gauge to count the cluster's 3", func() bool {
			return strings.Contains(metricsText(t, e), `mjrelay_queue_held{lane="transactional"} 3`)
		})
	}
	if got := upstream(a, b); got != 0 {
		t.Fatalf("%d held messages went upstream", got)
	}

	api.SetDown(false)
	deadline := time.Now().Add(60 * time.Second)
	for upstream(a, b) < n-1 || len(failed(a, b)) < 1 {
		if time.Now().After(deadline) {
			for _, it := range a.r.Queue.List() {
				t.Logf("queued: %+v %+v", it.Envelope.Subject, it.State)
			}
			t.Fatalf("after the API came back: %d delivered, failed %+v", upstream(a, b), len(failed(a, b)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	f := failed(a, b)[0]
	if f.HeaderFrom != "stranger@example.net" || f.Reply.Code != 550 || f.Reply.Enhanced != "5.7.1" ||
		!strings.Contains(f.Reason, "stranger@example.net refused: it is not a sender of the Mailjet account") {
		t.Fatalf("failed event %+v", f)
	}
	a.waitFor("the cluster's queue empty", func() bool { return a.r.Queue.Stats().Messages == 0 })
	if got, fails := upstream(a, b), len(failed(a, b)); got != n-1 || fails != 1 {
		t.Fatalf("%d messages upstream and %d failed, want %d and 1 (each decided once in the cluster)", got, fails, n-1)
	}
}

// metricsText is a node's /metrics.
func metricsText(t *testing.T, e *env) string {
	t.Helper()
	resp, err := http.Get("http://" + e.r.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// upstream counts the messages the nodes' Mailjet emulators received.
func upstream(nodes ...*env) int {
	n := 0
	for _, e := range nodes {
		n += len(e.up.Received())
	}
	return n
}

// failed lists the failed events the nodes recorded.
func failed(nodes ...*env) []trafficlog.Event {
	var out []trafficlog.Event
	for _, e := range nodes {
		out = append(out, e.traffic.Events(trafficlog.Failed)...)
	}
	return out
}
