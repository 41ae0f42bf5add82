package cluster_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/cluster"
	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestSingletonRunsOnOneNode: three nodes run the same periodic job; only
// one runs it at a time, and when that node stops, another takes over.
// Hold does the same for a job that runs until told to stop.
func TestSingletonRunsOnOneNode(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	type node struct {
		cancel context.CancelFunc
		runs   atomic.Int32
		done   chan struct{}
	}
	for _, hold := range []bool{false, true} {
		var running atomic.Int32 // nodes inside the job now
		var over atomic.Bool
		nodes := make([]*node, 3)
		for i := range nodes {
			pool, err := pg.Open(ctx, pg.Options{URL: url, MaxConns: 3})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			n := &node{done: make(chan struct{})}
			nodes[i] = n
			nctx, cancel := context.WithCancel(ctx)
			n.cancel = cancel
			s := cluster.Singleton{Pool: pool, Name: "test job", Every: 20 * time.Millisecond, Retry: 50 * time.Millisecond}
			job := func(context.Context) error {
				if running.Add(1) > 1 {
					over.Store(true)
				}
				n.runs.Add(1)
				time.Sleep(5 * time.Millisecond)
				running.Add(-1)
				return nil
			}
			go func() {
				defer close(n.done)
				if !hold {
					s.Run(nctx, job)
					return
				}
				s.Hold(nctx, func(ctx context.Context) {
					for ctx.Err() == nil {
						job(ctx)
						time.Sleep(20 * time.Millisecond)
					}
				})
			}()
		}
		leader := func() int {
			for i, n := range nodes {
				if n.runs.Load() > 0 && n.cancel != nil {
					return i
				}
			}
			return -1
		}
		deadline := time.Now().Add(10 * time.Second)
		for leader() < 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		first := leader()
		if first < 0 {
			t.Fatalf("hold=%v: no node ran the job", hold)
		}
		time.Sleep(300 * time.Millisecond)
		for i, n := range nodes {
			if i != first && n.runs.Load() > 0 {
				t.Fatalf("hold=%v: node %d ran the job while node %d held it", hold, i, first)
			}
		}
		nodes[first].cancel()
		<-nodes[first].done
		nodes[first].cancel = nil
		for leader() < 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if leader() < 0 {
			t.Fatalf("hold=%v: no node took the job over", hold)
		}
		if over.Load() {
			t.Fatalf("hold=%v: two nodes ran the job at once", hold)
		}
		for _, n := range nodes {
			if n.cancel != nil {
				n.cancel()
				<-n.done
			}
		}
	}
}
