package cluster

import (
	"context"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Singleton runs a periodic job on one node of the cluster at a time: the
// node that holds the job's advisory lock, a session lock on a connection
// it keeps for that. When that node dies, its connection closes and the
// lock is free: another node's next try takes it.
type Singleton struct {
	Pool *pgxpool.Pool
	Name string
	// Every is the job's period; Retry how often a node without the lock
	// tries again (default: Every).
	Every, Retry time.Duration
	Log          *slog.Logger
}

func (s Singleton) key() int64 {
	h := fnv.New64a()
	h.Write([]byte("mjrelay singleton " + s.Name))
	return int64(h.Sum64())
}

// Run runs job every s.Every while this node holds the lock, until ctx
// ends. The first run is at once when the lock is taken.
func (s Singleton) Run(ctx context.Context, job func(context.Context) error) error {
	if s.Retry <= 0 {
		s.Retry = s.Every
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for {
		s.lead(ctx, job, log)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.Retry):
		}
	}
}

// take takes the lock if it is free, on a connection kept for it: the
// caller runs the job, then release closes the connection (the lock goes
// with it; it never goes back to the pool holding it).
func (s Singleton) take(ctx context.Context, log *slog.Logger) (conn *pgxpool.Conn, release func()) {
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return nil, nil
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, s.key()).Scan(&got); err != nil || !got {
		conn.Release()
		return nil, nil
	}
	log.Info("this node runs a cluster-wide job", "job", s.Name)
	return conn, func() { conn.Conn().Close(context.Background()); conn.Release() }
}

// lead runs the job every s.Every while it holds the lock.
func (s Singleton) lead(ctx context.Context, job func(context.Context) error, log *slog.Logger) {
	conn, release := s.take(ctx, log)
	if conn == nil {
		return
	}
	defer release()
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		if err := job(ctx); err != nil && ctx.Err() == nil {
			log.Warn("cluster-wide job failed", "job", s.Name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Still holding it? A lost connection lost the lock too.
		if err := conn.Ping(ctx); err != nil {
			return
		}
	}
}

// Hold runs fn (a loop of its own, such as the Mailjet account's refresh)
// on the one node holding the lock, with a context that ends when ctx
// does or when the lock may be lost (its connection fails); the other
// nodes try to take the lock every s.Retry. It returns when ctx ends.
func (s Singleton) Hold(ctx context.Context, fn func(context.Context)) {
	if s.Retry <= 0 {
		s.Retry = time.Minute
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for ctx.Err() == nil {
		s.hold(ctx, fn, log)
		select {
		case <-ctx.Done():
		case <-time.After(s.Retry):
		}
	}
}

func (s Singleton) hold(ctx context.Context, fn func(context.Context), log *slog.Logger) {
	conn, release := s.take(ctx, log)
	if conn == nil {
		return
	}
	defer release()
	jctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); fn(jctx) }()
	t := time.NewTicker(s.Retry)
	defer t.Stop()
	for {
		select {
		case <-done:
			cancel()
			return
		case <-t.C:
			if err := conn.Ping(ctx); err != nil {
				log.Warn("cluster-wide job stopped here: the lock may be lost", "job", s.Name, "err", err)
				cancel()
				<-done
				return
			}
		}
	}
}
