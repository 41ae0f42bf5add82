package relay

import (
	"log/slog"

	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/store"
)

// The backends: the relay and `mjrelay queue` / `mjrelay log` open the
// queue and the traffic store here, and use them only through the
// queue.Queue and store.Store interfaces.

// ErrQueueInUse is returned by OpenQueue when another process (a running
// relay) has the queue open.
var ErrQueueInUse = spool.ErrLocked

// OpenQueue opens the queue in data_dir with the configured limits (nil
// log: none).
func OpenQueue(cfg *config.Config, log *slog.Logger) (queue.Queue, error) {
	sp, err := spool.Open(cfg.QueueDir(), spool.Options{
		MaxBytes: cfg.Queue.MaxBytes, MaxMessages: cfg.Queue.MaxMessages, MinFreeBytes: cfg.Queue.MinFreeBytes, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// OpenStore opens (creating if needed) the traffic store in data_dir with
// the configured retention (nil log: none).
func OpenStore(cfg *config.Config, log *slog.Logger) (store.Store, error) {
	st, err := inspect.Open(inspect.Path(cfg.DataDir), inspect.Options{
		Retention: cfg.Store.Retention.D(), KeepBodies: cfg.Store.KeepBodies.D(), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// ReadStore opens the traffic store in data_dir for queries only, while a
// relay may be running or not; it fails if there is none.
func ReadStore(cfg *config.Config) (store.Store, error) {
	st, err := inspect.Open(inspect.Path(cfg.DataDir), inspect.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	return st, nil
}
