package relay

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// The backends: the relay and `mjrelay queue` / `mjrelay log` open the
// queue and the traffic store here, and use them only through the
// queue.Queue and store.Store interfaces; and what records the events.

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

// OpenStore opens (creating if needed) the traffic store with the
// configured retention: in data_dir, or the cluster's in cluster mode
// (nil log: none).
func OpenStore(cfg *config.Config, log *slog.Logger) (store.Store, error) {
	return openOwnStore(context.Background(), cfg, false, log)
}

// ReadStore opens the traffic store for queries only, while a relay may be
// running or not; it fails if there is none.
func ReadStore(cfg *config.Config) (store.Store, error) {
	return openOwnStore(context.Background(), cfg, true, nil)
}

// openTraffic opens the traffic log that log.traffic names (nil for "off").
func openTraffic(cfg *config.Config) (*trafficlog.JSONLines, error) {
	switch cfg.Log.Traffic {
	case "off":
		return nil, nil
	case "stdout":
		return trafficlog.NewJSONLines(os.Stdout), nil
	case "stderr":
		return trafficlog.NewJSONLines(os.Stderr), nil
	}
	f, err := os.OpenFile(cfg.TrafficFile(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return trafficlog.NewJSONLines(f), nil
}

// recorders are what records the events, each optional: the traffic log,
// a test's recorder, the traffic store and the metrics.
type recorders struct {
	log     *trafficlog.JSONLines
	test    trafficlog.Recorder
	store   store.Store
	metrics trafficlog.Recorder
}

// multi is the one recorder the producers get: each of rs in turn, in the
// order of the fields.
func (rs recorders) multi() trafficlog.Multi {
	var m trafficlog.Multi
	if rs.log != nil {
		m = append(m, rs.log)
	}
	for _, r := range []trafficlog.Recorder{rs.test, rs.store, rs.metrics} {
		if r != nil {
			m = append(m, r)
		}
	}
	return m
}

// OpenOfflineRecorder opens what records the actions of a command on the
// queue while no relay runs (`mjrelay queue retry|delete`), as the relay
// would record them: in the traffic log when it is a file (stdout and
// stderr are the command's output) and in the traffic store. closeAll
// closes them.
func OpenOfflineRecorder(cfg *config.Config) (_ trafficlog.Recorder, closeAll func(), err error) {
	var rs recorders
	if cfg.TrafficFile() != "" {
		if rs.log, err = openTraffic(cfg); err != nil {
			return nil, nil, fmt.Errorf("traffic log: %w", err)
		}
	}
	if rs.store, err = OpenStore(cfg, nil); err != nil {
		if rs.log != nil {
			rs.log.Close()
		}
		return nil, nil, fmt.Errorf("traffic store: %w", err)
	}
	return rs.multi(), func() {
		if rs.log != nil {
			rs.log.Close()
		}
		rs.store.Close()
	}, nil
}
