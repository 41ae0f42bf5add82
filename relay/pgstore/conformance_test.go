package pgstore_test

import (
	"context"
	"sync"
	"testing"

	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgstore"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestConformance runs the traffic store suite against the PostgreSQL
// store.
func TestConformance(t *testing.T) { storetest.Run(t, harness()) }

// harness opens stores in fresh databases. A crash kills the stores open
// on the database (what they buffered is lost, as in a process that died)
// and hands the database over as it is.
func harness() storetest.Harness {
	var mu sync.Mutex
	open := map[string][]*pgstore.Store{}
	return storetest.Harness{
		Place: func(t *testing.T) string { return pgtest.DB(t) },
		Open: func(t *testing.T, url string, o storetest.Options) store.Store {
			s := openStore(t, url, pgstore.Options{Options: store.Options{Now: o.Now, Retention: o.Retention, KeepBodies: o.KeepBodies}})
			mu.Lock()
			open[url] = append(open[url], s)
			mu.Unlock()
			return s
		},
		Crash: func(t *testing.T, url string) string {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range open[url] {
				s.Kill()
			}
			open[url] = nil
			return url
		},
	}
}

// openStore opens a store on its own pool, both closed when the test
// ends.
func openStore(t testing.TB, url string, o pgstore.Options) *pgstore.Store {
	t.Helper()
	o.Pool = pgtest.Pool(t, url, 6)
	s, err := pgstore.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
