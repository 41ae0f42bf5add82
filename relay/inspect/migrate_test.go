package inspect

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

// TestMigrateFromV1: a store written by the previous version (schema 1,
// testdata/README.md) opens with everything it held, and with what schema
// 2 adds worked out from it: the reason labels, the upstream ids (found by
// search), the deferrals' reasons, and a funnel equal to the one a new
// store builds from the same traffic.
func TestMigrateFromV1(t *testing.T) {
	t0 := storetest.T0
	path := filepath.Join(t.TempDir(), "store.db")
	fixture, err := os.ReadFile("testdata/store-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fixture, 0o600); err != nil {
		t.Fatal(err)
	}
	tables := []string{"messages", "rcpts", "events", "bodies", "addrs"}
	before := counts(t, path, tables)

	ctx := context.Background()
	now := func() time.Time { return t0.Add(time.Hour) }
	s, err := Open(path, Options{KeepBodies: time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := s.rdb.QueryRow(`SELECT v FROM meta WHERE k = 'schema'`).Scan(&v); err != nil || v != schemaVersion {
		t.Fatalf("schema %d (%v), want %d", v, err, schemaVersion)
	}
	after := counts(t, path, tables)
	for _, tb := range tables {
		grown := tb == "addrs" && after[tb] == before[tb]+3 // the three upstream ids
		if after[tb] != before[tb] && !grown {
			t.Errorf("%s: %d rows, had %d", tb, after[tb], before[tb])
		}
	}

	smp := storetest.NewSample(t0)
	ids := smp.IDs
	why := map[string]string{}
	p, err := s.List(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range p.Messages {
		why[m.ID] = m.Why
		if m.State == store.StateRefused {
			ids["refused"] = m.ID
		}
	}
	want := map[string]string{ids["invoice"]: "", ids["sandbox"]: "", ids["newsletter"]: "recipient: user unknown",
		ids["retry"]: "421 4.7.0", ids["failed"]: "550 5.1.1", ids["refused"]: "data: sender_not_found"}
	if !reflect.DeepEqual(why, want) {
		t.Errorf("reasons %v\nwant %v", why, want)
	}
	for q, id := range map[string]string{"4XqZ9k1aB2": ids["newsletter"], "7hgt2m0pq9": ids["failed"]} {
		if got := storetest.IDs(t, s, store.Filter{Q: q}); !slices.Equal(got, []string{id}) {
			t.Errorf("search %s: %v, want %s", q, got, id)
		}
	}
	if got := storetest.IDs(t, s, store.Filter{Reason: "421 4.7.0"}); !slices.Equal(got, []string{ids["retry"]}) {
		t.Errorf("reason filter: %v", got)
	}
	st, err := s.Stats(ctx, t0, t0.Add(time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Deferrals) != 1 || st.Deferrals[0].Reason != "421 4.7.0" || st.Totals["deferred"] != 1 {
		t.Errorf("deferrals %+v, total %d", st.Deferrals, st.Totals["deferred"])
	}
	if m, err := s.Get(ctx, ids["invoice"]); err != nil || !m.HasRaw || m.State != store.StateDelivered {
		t.Errorf("invoice after the migration: %+v, %v", m, err)
	}
	// Schema 1 timed sandboxed mail as if Mailjet had accepted it.
	if m, err := s.Get(ctx, ids["sandbox"]); err != nil || m.LatencyMS != 0 {
		t.Errorf("sandboxed message after the migration: latency %v, %v", m.LatencyMS, err)
	}

	// The same traffic recorded by this version.
	fresh, err := Open(filepath.Join(t.TempDir(), "fresh.db"), Options{KeepBodies: time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for _, e := range smp.Events {
		fresh.Record(e)
	}
	if err := fresh.RecordMailjet(ctx, smp.Mailjet); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	migrated, err := s.Funnel(ctx, t0, t0, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	built, err := fresh.Funnel(ctx, t0, t0, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(migrated, built) {
		t.Errorf("funnel after the migration %+v\nof a new store %+v", migrated.Total, built.Total)
	}
	if built.Total.Received != 5 || built.Total.Accepted != 2 {
		t.Errorf("funnel %+v", built.Total)
	}
}

func counts(t *testing.T, path string, tables []string) map[string]int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]int{}
	for _, tb := range tables {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM ` + tb).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tb] = n
	}
	return out
}
