package relay

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pgaccount"
	"github.com/mjrelay/mjrelay/relay/pgstore"
	"github.com/mjrelay/mjrelay/relay/store"
)

// The traffic store's backend: the embedded SQLite store in data_dir, or
// in cluster mode the cluster's store in PostgreSQL, which every node
// records into and reads (the web UI, the API, the webhook, mjrelay log).

// storeDB is where the traffic store is kept in cluster mode: the
// cluster's database URL and password ("" for the embedded store).
func storeDB(cfg *config.Config) (url, password string) { return "", "" }

// openStore opens the traffic store at url (the embedded store when
// url is ""); read-only for queries alone (mjrelay log).
func openStore(cfg *config.Config, url, password string, readOnly bool, log *slog.Logger) (store.Store, error) {
	o := store.Options{ReadOnly: readOnly, Retention: cfg.Store.Retention.D(), KeepBodies: cfg.Store.KeepBodies.D(), Logger: log}
	if url == "" {
		st, err := inspect.Open(inspect.Path(cfg.DataDir), o)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pg.Open(ctx, pg.Options{URL: url, Password: password, MaxConns: 8, AppName: "mjrelay store", Logger: log})
	if err != nil {
		return nil, err
	}
	st, err := pgstore.Open(ctx, pgstore.Options{Options: o, Pool: pool, ClosePool: true})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w (PostgreSQL at %s)", err, pg.Where(url))
	}
	return st, nil
}

// accountSnapshots is where the Mailjet account snapshot is kept: with
// the traffic store in the cluster's database, there too (every node finds
// the newest any node fetched); else nil, the file in data_dir.
func accountSnapshots(ctx context.Context, st store.Store, log *slog.Logger) (account.Snapshots, error) {
	ps, ok := st.(*pgstore.Store)
	if !ok {
		return nil, nil
	}
	return pgaccount.New(ctx, ps.Pool(), log)
}
