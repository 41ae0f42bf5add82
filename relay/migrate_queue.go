package relay

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/pgqueue"
	"github.com/mjrelay/mjrelay/relay/spool"
)

// MigrateQueue moves an embedded node's queue (the spool in data_dir)
// into the cluster's database (cluster.postgres_url), with each message's
// state, in batches: a batch is committed in PostgreSQL, then completed in
// the spool. Safe to run twice, or again after it was interrupted: an id
// already in the cluster's queue, or that already left it, is skipped. The
// relay must not be running on data_dir. It returns how many messages it
// moved and how many were there already.
func MigrateQueue(ctx context.Context, cfg *config.Config, log *slog.Logger) (moved, skipped int, err error) {
	if !cfg.Clustered() {
		return 0, 0, fmt.Errorf("cluster.postgres_url is not set: nothing to migrate to")
	}
	sp, err := spool.Open(cfg.QueueDir(), spool.Options{Logger: log})
	if err == spool.ErrLocked {
		return 0, 0, fmt.Errorf("a relay is running with data_dir %s: stop it first", cfg.DataDir)
	}
	if err != nil {
		return 0, 0, err
	}
	defer sp.Close()
	pool, err := OpenPool(ctx, cfg, log)
	if err != nil {
		return 0, 0, err
	}
	defer pool.Close()
	pq, err := pgqueue.Open(ctx, pool, pgqueueOptions(cfg, true, log))
	if err != nil {
		return 0, 0, err
	}
	defer pq.Close()
	items := sp.List()
	for len(items) > 0 {
		chunk := items[:min(len(items), 100)]
		items = items[len(chunk):]
		batch := make([]pgqueue.Moved, 0, len(chunk))
		for _, it := range chunk {
			b, err := sp.Body(it.Envelope.ID)
			if err != nil {
				return moved, skipped, err
			}
			batch = append(batch, pgqueue.Moved{Item: it, Body: b})
		}
		n, err := pq.Insert(ctx, batch)
		if err != nil {
			return moved, skipped, err
		}
		moved, skipped = moved+n, skipped+len(batch)-n
		for _, m := range batch {
			if err := sp.Done(ctx, m.Item.Envelope.ID); err != nil {
				return moved, skipped, err
			}
		}
	}
	return moved, skipped, nil
}
