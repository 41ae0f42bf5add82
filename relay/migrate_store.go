package relay

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mjrelay/mjrelay/relay/config"
)

// MigrateStore moves the embedded traffic history (the SQLite store in
// data_dir) into the cluster's database. It is the traffic store's part of
// `mjrelay migrate --to-cluster`, built with the PostgreSQL traffic store.
func MigrateStore(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	return errors.New("migrating the traffic history into PostgreSQL is not built yet (the queue was migrated)")
}
