package inspect

import (
	"context"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

// Funnel returns the delivery funnel by day and lane, from the per-minute
// counters (store.FunnelBuilder).
func (s *Store) Funnel(ctx context.Context, since, until time.Time, loc *time.Location) (*store.Funnel, error) {
	b := store.NewFunnelBuilder(since, until, loc)
	rows, err := s.rdb.QueryContext(ctx, `SELECT minute / 15, kind, class, sum(n) FROM stats
		WHERE minute >= ? AND minute < ? AND kind IN (`+placeholders(len(b.Kinds))+`) GROUP BY 1, 2, 3`,
		append([]any{b.FromMin, b.UntilMin}, anys(b.Kinds)...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if err := b.AddRows(rows); err != nil {
		return nil, err
	}
	return b.Funnel(), nil
}

// placeholders is "?,?,?" for n.
func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }
