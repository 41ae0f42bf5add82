package pg

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
)

// retryEvery is how often a Schema whose server did not answer at open
// tries again.
const retryEvery = 500 * time.Millisecond

// Schema is a component's migrations on a pool, applied when the
// component opens or, if the server does not answer then (a relay node
// that starts while the database is away: Options.Away), as soon as it
// does: in the background, and by Ready before the component's first use.
type Schema struct {
	pool      *pgxpool.Pool
	component string
	ms        []Migration
	log       *slog.Logger

	mu   sync.Mutex
	done atomic.Bool
}

// NewSchema applies the component's migrations (Migrate). An error the
// server's absence explains (Temporary) is not returned: the migrations
// are applied once it answers, until then Ready returns that error. The
// retries end with the pool (Close) or at an error waiting does not cure,
// which is logged.
func NewSchema(ctx context.Context, pool *pgxpool.Pool, component string, ms []Migration, log *slog.Logger) (*Schema, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Schema{pool: pool, component: component, ms: ms, log: log}
	err := s.Ready(ctx)
	switch {
	case err == nil:
	case Temporary(err):
		log.Warn("PostgreSQL unreachable: the schema is migrated when it answers", "component", component, "err", err)
		go s.retry()
	default:
		return nil, err
	}
	return s, nil
}

// Ready applies the migrations unless they are: nil once they are.
func (s *Schema) Ready(ctx context.Context) error {
	if s.done.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done.Load() {
		return nil
	}
	if err := Migrate(ctx, s.pool, s.component, s.ms, s.log); err != nil {
		return err
	}
	s.done.Store(true)
	return nil
}

func (s *Schema) retry() {
	for !s.done.Load() {
		time.Sleep(retryEvery)
		ctx, cancel := context.WithTimeout(context.Background(), 10*retryEvery)
		err := s.Ready(ctx)
		cancel()
		switch {
		case err == nil || Temporary(err):
		case errors.Is(err, puddle.ErrClosedPool): // the component closed
			return
		default:
			s.log.Error("PostgreSQL schema migration failed", "component", s.component, "err", err)
			return
		}
	}
}
