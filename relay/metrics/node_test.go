package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/metrics"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

type fakeNode struct{ held int }

func (n fakeNode) HeldLocally() int            { return n.held }
func (n fakeNode) Degraded() (bool, time.Time) { return n.held > 0, t0 }

// TestNodeLabel: a cluster node's own counters and its local hold carry
// node="…" (they add up across nodes); the queue depths, the cluster's,
// carry no node label.
func TestNodeLabel(t *testing.T) {
	m := metrics.NewNode(nil, "node7")
	m.Recorder().Record(trafficlog.NewDeleted(queue.Envelope{ID: "x", Class: "bulk"}, "test"))
	m.Observe(metrics.State{QueueDepth: func() map[string]int { return map[string]int{"bulk": 4} }, Cluster: fakeNode{held: 3}})
	out := scrape(t, m)
	for _, want := range []string{
		`mjrelay_messages_deleted_total{node="node7"} 1`,
		`mjrelay_cluster_held_locally{node="node7"} 3`,
		`mjrelay_cluster_degraded{node="node7"} 1`,
		`mjrelay_queue_depth{lane="bulk"} 4`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in:\n%s", want, grepLines(out, "mjrelay_"))
		}
	}
	if strings.Contains(scrape(t, metrics.New(nil)), `node="`) {
		t.Error("an embedded relay's series carry a node label")
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
