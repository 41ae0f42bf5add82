package pg_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestMigrateRace: nodes starting at once on an empty database apply each
// migration exactly once; a later start applies only what is new; a
// database newer than the binary is refused.
func TestMigrateRace(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	ms := []pg.Migration{
		{1, "messages", `CREATE TABLE m (id text PRIMARY KEY)`},
		{2, "counter", `CREATE TABLE c (n int); INSERT INTO c VALUES (0)`},
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := pg.Open(ctx, pg.Options{URL: url, MaxConns: 2})
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			errs[i] = pg.Migrate(ctx, pool, "test", ms, nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	pool, err := pg.Open(ctx, pg.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var rows int
	pool.QueryRow(ctx, `SELECT count(*) FROM c`).Scan(&rows)
	if rows != 1 {
		t.Fatalf("migration 2 applied %d times", rows)
	}
	ms = append(ms, pg.Migration{3, "more", `INSERT INTO c VALUES (3)`})
	if err := pg.Migrate(ctx, pool, "test", ms, nil); err != nil {
		t.Fatal(err)
	}
	pool.QueryRow(ctx, `SELECT count(*) FROM c`).Scan(&rows)
	if rows != 2 {
		t.Fatalf("after migration 3: %d rows", rows)
	}
	if err := pg.Migrate(ctx, pool, "test", ms[:2], nil); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("an older binary on a newer schema: %v", err)
	}
}

func TestRedact(t *testing.T) {
	got := pg.Redact(`cannot parse "postgres://u:s3cret@db/x"`, "postgres://u:s3cret@db/x")
	if strings.Contains(got, "s3cret") || pg.Where("postgres://u:s3cret@db:5432/x") != "db:5432/x" {
		t.Fatalf("redact %q, where %q", got, pg.Where("postgres://u:s3cret@db:5432/x"))
	}
}

// TestSchemaLater: a component opened while the server is down gets its
// schema once the server answers, without being asked (the background
// retry), and Ready reports the server's absence until then; with the
// server up, a failing migration still fails the open.
func TestSchemaLater(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	ms := []pg.Migration{{1, "t", `CREATE TABLE later (id int)`}}
	pool := db.StoppedPool(t)
	s, err := pg.NewSchema(ctx, pool, "later", ms, nil)
	if err != nil {
		t.Fatalf("NewSchema with the server stopped: %v", err)
	}
	if err := s.Ready(ctx); err == nil || !pg.Temporary(err) {
		t.Fatalf("Ready with the server stopped: %v", err)
	}
	if err := db.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'later'`).Scan(&n) == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the schema was not migrated once the server answered")
		}
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	bad := []pg.Migration{{1, "bad", `CREATE TABLE later (id int)`}}
	if _, err := pg.NewSchema(ctx, pool, "bad", bad, nil); err == nil {
		t.Fatal("a failing migration with the server up did not fail")
	}
}
