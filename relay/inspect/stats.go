package inspect

import (
	"context"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

// Stats returns the counters of [since, until) in buckets of step (at least
// a minute; at most 1440 buckets), from the per-minute counters the writer
// keeps.
func (s *Store) Stats(ctx context.Context, since, until time.Time, step time.Duration) (*store.Stats, error) {
	b := store.NewStatsBuilder(since, until, step)
	rows, err := s.rdb.QueryContext(ctx, `SELECT minute, kind, class, reason, n, lat_sum, lat_max FROM stats
		WHERE minute >= ? AND minute < ?`, b.FromMin, b.UntilMin)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if err := b.AddRows(rows); err != nil {
		return nil, err
	}
	return b.Stats(), nil
}
