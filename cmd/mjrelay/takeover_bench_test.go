package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
)

// BenchmarkTakeover: node 1 of two holds a queue of 1,000 messages (its
// claims in flight to a Mailjet that does not answer), node 2 has been up
// for a whole lease; node 1 is killed with SIGKILL and Mailjet answers
// again. Reported: the lease, how long until node 2 delivered the first
// message, the last of node 1's claimed ones and all 1,000 (from the
// kill). Run with -benchtime 1x.
func BenchmarkTakeover(b *testing.B) {
	const lease, n = 10 * time.Second, 1000
	for range b.N {
		cw := newClusterWorld(b, pgtest.New(b).URL("postgres"), 2, lease.String())
		cw.up.SetDataDelay(time.Hour)
		p1 := cw.node(1)
		c := dial(b, p1.addr)
		for i := range n {
			if err := sendToken(c, fmt.Sprintf("tk-%d", i)); err != nil {
				b.Fatal(err)
			}
		}
		c.Quit()
		cw.node(2)
		time.Sleep(lease + time.Second) // node 2 may take over lapsed claims
		p1.kill9()
		killed := time.Now()
		cw.up.SetDataDelay(0)
		var first time.Duration
		for got := 0; got < n; got = len(tokensAt(cw.up)) {
			if got > 0 && first == 0 {
				first = time.Since(killed)
			}
			if time.Since(killed) > 5*time.Minute {
				b.Fatalf("%d of %d delivered 5 min after the kill", got, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		all := time.Since(killed)
		b.ReportMetric(lease.Seconds(), "lease-s")
		b.ReportMetric(first.Seconds(), "first-s")
		b.ReportMetric(all.Seconds(), "all-1000-s")
	}
	b.ReportMetric(0, "ns/op")
}
