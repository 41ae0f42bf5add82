package pgstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgstore"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

// The benchmarks run on the traffic and with the queries of the embedded
// store's (storetest.BenchQueries, BenchRecord), over a database of
// storetest.BenchMessages messages recorded through the writer:
//
//	go test -run XXX -bench Store ./relay/pgstore/

var bench struct {
	once sync.Once
	c    *pgtest.Cluster
	err  error
}

const benchDB = "bench"

// benchStore builds the benchmark database once per test process (in
// the shared throw-away cluster) and returns the cluster.
func benchStore(b *testing.B) *pgtest.Cluster {
	b.Helper()
	bench.once.Do(func() {
		bench.c = pgtest.Shared(b)
		ctx := context.Background()
		if bench.err = createDB(ctx, bench.c, benchDB, ""); bench.err != nil {
			return
		}
		start := time.Now()
		pool, err := pg.Open(ctx, pg.Options{URL: bench.c.URL(benchDB), MaxConns: 6})
		if bench.err = err; err != nil {
			return
		}
		// Closed with its pool once built: a database copied must have no
		// connections.
		s, err := pgstore.Open(ctx, pgstore.Options{Options: store.Options{Retention: 24 * 365 * time.Hour}, Pool: pool, ClosePool: true})
		if bench.err = err; err != nil {
			pool.Close()
			return
		}
		defer s.Close()
		var events int
		if events, bench.err = storetest.BenchFill(s, 1, 0, storetest.BenchMessages, 1<<16); bench.err != nil {
			return
		}
		if h := s.Health(); h.DroppedEvents > 0 || h.WriteErrors > 0 {
			bench.err = fmt.Errorf("building the benchmark store: %+v", h)
			return
		}
		s.Close()
		el := time.Since(start)
		bench.err = vacuum(ctx, bench.c.URL(benchDB))
		b.Logf("built the benchmark database: %d messages, %d events in %s (%.0f events/s), vacuumed in %s",
			storetest.BenchMessages, events, el.Round(time.Second), float64(events)/el.Seconds(), time.Since(start.Add(el)).Round(time.Second))
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.c
}

// createDB creates database name (a copy of template, if not "").
func createDB(ctx context.Context, c *pgtest.Cluster, name, template string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	q := "CREATE DATABASE " + name
	if template != "" {
		q += " TEMPLATE " + template
	}
	_, err = conn.Exec(ctx, q)
	return err
}

func vacuum(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "VACUUM ANALYZE")
	return err
}

// BenchmarkStoreQuery times the common queries over a store of 1,000,000
// messages.
func BenchmarkStoreQuery(b *testing.B) {
	c := benchStore(b)
	s := openStore(b, c.URL(benchDB), pgstore.Options{Options: store.Options{ReadOnly: true}})
	storetest.BenchQueries(b, s)
}

// BenchmarkStoreRecord measures the writer's sustained rate through Record
// (each op is one message: received, attempt, delivered, and a Mailjet
// event for 60% of them) on top of a 1,000,000-message store (a copy).
func BenchmarkStoreRecord(b *testing.B) {
	c := benchStore(b)
	ctx := context.Background()
	name := fmt.Sprintf("bench_record_%d", time.Now().UnixNano())
	if err := createDB(ctx, c, name, benchDB); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if conn, err := pgx.Connect(ctx, c.URL("postgres")); err == nil {
			conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)")
			conn.Close(ctx)
		}
	})
	s := openStore(b, c.URL(name), pgstore.Options{Options: store.Options{Retention: 24 * 365 * time.Hour}})
	storetest.BenchRecord(b, s, 1<<16)
}
