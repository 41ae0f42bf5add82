package pgqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgqueue"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/queue/queuetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestConformance runs the queue suite against the PostgreSQL queue. A
// place is a fresh database; a crash leaves it as it is (what committed is
// there) and the next start opens it again, beside the instance that
// "died", which the suite no longer uses.
func TestConformance(t *testing.T) {
	queuetest.Run(t, queuetest.Harness{
		Place: func(t *testing.T) string { return pgtest.DB(t) },
		Open: func(t *testing.T, url string, l queuetest.Limits) queue.Queue {
			return open(t, url, pgqueue.Options{Node: "n1", MaxMessages: l.MaxMessages, MaxBytes: l.MaxBytes})
		},
		Crash: func(t *testing.T, url string) string { return url },
	})
}

// open opens a queue on a pool of its own, both closed when the test ends.
func open(t testing.TB, url string, o pgqueue.Options) *pgqueue.Queue {
	t.Helper()
	ctx := context.Background()
	pool, err := pg.Open(ctx, pg.Options{URL: url, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	if o.Lease == 0 {
		o.Lease = 5 * time.Second
	}
	q, err := pgqueue.Open(ctx, pool, o)
	if err != nil {
		pool.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(); pool.Close() })
	return q
}
