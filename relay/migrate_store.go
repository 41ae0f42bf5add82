package relay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/pgstore"
	"github.com/mjrelay/mjrelay/relay/store"
)

// migrateChunk is how many messages one transaction of the migration
// copies.
const migrateChunk = 500

// MigrateStore copies the embedded traffic history (the SQLite store in
// data_dir: messages, recipients, events, raw bodies, statistics) into the
// cluster's traffic store in PostgreSQL: the traffic store's part of
// `mjrelay migrate --to-cluster`. It is safe to run twice: a message is
// added once (by queue id), an event once (by its key), and the
// statistics it brings are set, not added again. The embedded store is
// only read.
func MigrateStore(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if !cfg.Clustered() {
		return errors.New("cluster.postgres_url is not set: no cluster to move the traffic history into")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := inspect.Path(cfg.DataDir)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		log.Info("no traffic store in data_dir: no traffic history to migrate", "path", path)
		return nil
	}
	src, err := inspect.Open(path, inspect.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("traffic store %s: %w", path, err)
	}
	defer src.Close()
	st, err := openOwnStore(ctx, cfg, false, log)
	if err != nil {
		return fmt.Errorf("cluster traffic store: %w", err)
	}
	defer st.Close()
	dst := st.(*pgstore.Store)
	seen, added := 0, 0
	err = src.Export(ctx, migrateChunk, func(ds []store.Dump) error {
		n, err := dst.Import(ctx, ds)
		seen, added = seen+len(ds), added+n
		if err == nil && seen%(20*migrateChunk) == 0 {
			log.Info("migrating the traffic history", "messages", seen, "new", added)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("migrating the traffic history (%d messages copied): %w", seen, err)
	}
	stats, err := src.ExportStats(ctx)
	if err == nil {
		err = dst.ImportStats(ctx, "migrated:"+cfg.Cluster.NodeName, stats)
	}
	if err != nil {
		return fmt.Errorf("migrating the traffic statistics: %w", err)
	}
	log.Info("traffic history migrated into PostgreSQL", "messages", seen, "new", added, "already_there", seen-added)
	return nil
}
