package pgqueue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgqueue"
	"github.com/mjrelay/mjrelay/relay/queue"
)

// TestJoinLater: a node opened while PostgreSQL is down (JoinLater) opens
// all the same; it refuses Puts without sending anything and claims
// nothing. Once the server answers it creates the schema, joins the
// cluster and claims what another node queued meanwhile; without
// JoinLater, Open fails. A database that refuses us for good (here: it
// does not exist) still fails the pool's Open, Away or not.
func TestJoinLater(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := pg.Open(ctx, pg.Options{URL: db.URL("no_such_db"), Away: true}); err == nil || !strings.Contains(err.Error(), "no_such_db") {
		t.Fatalf("a database that does not exist, with Away: %v", err)
	}
	pool := db.StoppedPool(t)
	if _, err := pg.Open(ctx, pg.Options{URL: db.URL("postgres")}); err == nil {
		t.Fatal("the pool opened with the server stopped, without Away")
	}
	if _, err := pgqueue.Open(ctx, pool, pgqueue.Options{Node: "a", Lease: 5 * time.Second}); err == nil {
		t.Fatal("the queue opened with the server stopped, without JoinLater")
	}
	a, err := pgqueue.Open(ctx, pool, pgqueue.Options{Node: "a", Lease: 5 * time.Second, JoinLater: true})
	if err != nil {
		t.Fatalf("JoinLater with the server stopped: %v", err)
	}
	defer a.Close()
	var got seen
	a.Subscribe(got.add)
	if a.Joined() {
		t.Fatal("joined with the server stopped")
	}
	env := &queue.Envelope{ID: a.NewID(), Received: time.Now(), From: "a@example.com", To: []string{"b@example.org"}}
	if err := a.Put(ctx, env, []byte("x")); !errors.Is(err, pgqueue.ErrNotJoined) {
		t.Fatalf("Put before joining: %v, want ErrNotJoined", err)
	}

	if err := db.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to join the cluster", 30*time.Second, a.Joined)
	b := open(t, db.URL("postgres"), pgqueue.Options{Node: "b", Admin: true})
	ids := putN(t, b, 3, "transactional")
	waitFor(t, "a to claim what b queued", 30*time.Second, func() bool { return got.n() == len(ids) })
	nodes, err := b.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Instance != a.Instance() || !nodes[0].Alive {
		t.Fatalf("the cluster's nodes: %+v, %v; want a, alive", nodes, err)
	}
	putN(t, a, 1, "transactional")
}
