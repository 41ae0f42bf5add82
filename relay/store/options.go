package store

import (
	"log/slog"
	"time"
)

// Options are what every store backend takes. Zero values get the
// defaults noted (WithDefaults).
type Options struct {
	// Retention is how long message records are kept (default 720h).
	Retention time.Duration
	// KeepBodies is how long raw messages are kept after the message left
	// the queue; 0 stores no bodies at all.
	KeepBodies time.Duration
	Logger     *slog.Logger
	// ReadOnly opens an existing store for queries only (mjrelay log): no
	// writer, no pruning; Record drops everything.
	ReadOnly bool
	// Buffer is how many events may wait for the writer (default 131072).
	Buffer int
	// MaxPendingBodyBytes caps the raw bodies waiting for the writer
	// (default 256 MiB).
	MaxPendingBodyBytes int64
	// PruneEvery is the pruning period (default 10m).
	PruneEvery time.Duration
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// WithDefaults returns o with its zero values replaced by the defaults.
func (o Options) WithDefaults() Options {
	if o.Retention <= 0 {
		o.Retention = 720 * time.Hour
	}
	o.KeepBodies = max(o.KeepBodies, 0)
	if o.Buffer <= 0 {
		o.Buffer = 1 << 17
	}
	if o.MaxPendingBodyBytes <= 0 {
		o.MaxPendingBodyBytes = 256 << 20
	}
	if o.PruneEvery <= 0 {
		o.PruneEvery = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
