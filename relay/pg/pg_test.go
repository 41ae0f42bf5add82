package pg_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

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
