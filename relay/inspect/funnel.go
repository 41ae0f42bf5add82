package inspect

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

// funnelSteps map the per-minute counters to the funnel's steps.
var funnelSteps = map[string]func(*store.FunnelCounts) *int{
	"rcpt_received":  func(c *store.FunnelCounts) *int { return &c.Received },
	"rcpt_accepted":  func(c *store.FunnelCounts) *int { return &c.Accepted },
	"rcpt_failed":    func(c *store.FunnelCounts) *int { return &c.Failed },
	"rcpt_sandboxed": func(c *store.FunnelCounts) *int { return &c.Sandboxed },
	"mj_sent":        func(c *store.FunnelCounts) *int { return &c.Delivered },
	"mj_bounce":      func(c *store.FunnelCounts) *int { return &c.Bounced },
	"mj_blocked":     func(c *store.FunnelCounts) *int { return &c.Blocked },
	"mj_spam":        func(c *store.FunnelCounts) *int { return &c.Spam },
	"mj_unsub":       func(c *store.FunnelCounts) *int { return &c.Unsub },
}

// maxFunnelDays bounds a funnel (the statistics are kept for
// store.retention anyway).
const maxFunnelDays = 400

// Funnel returns the delivery funnel by day and lane, from the per-minute
// counters (read by quarter hour, so that any time zone's days are whole).
func (s *Store) Funnel(ctx context.Context, since, until time.Time, loc *time.Location) (*store.Funnel, error) {
	if loc == nil {
		loc = time.UTC
	}
	midnight := func(t time.Time) time.Time {
		t = t.In(loc)
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	}
	f := &store.Funnel{Lanes: map[string]store.FunnelCounts{}}
	last := midnight(until)
	for d := midnight(since); !d.After(last) && len(f.Days) < maxFunnelDays; d = d.AddDate(0, 0, 1) {
		f.Days = append(f.Days, store.FunnelDay{Day: d, Lanes: map[string]store.FunnelCounts{}})
	}
	if len(f.Days) == 0 {
		f.Days = append(f.Days, store.FunnelDay{Day: last, Lanes: map[string]store.FunnelCounts{}})
	}
	f.Since, f.Until = f.Days[0].Day, f.Days[len(f.Days)-1].Day.AddDate(0, 0, 1)
	kinds := make([]string, 0, len(funnelSteps))
	for k := range funnelSteps {
		kinds = append(kinds, k)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT minute / 15, kind, class, sum(n) FROM stats
		WHERE minute >= ? AND minute < ? AND kind IN (`+placeholders(len(kinds))+`) GROUP BY 1, 2, 3`,
		append([]any{f.Since.Unix() / 60, f.Until.Unix() / 60}, anys(kinds)...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var quarter int64
		var kind, class string
		var n int
		if err := rows.Scan(&quarter, &kind, &class, &n); err != nil {
			return nil, err
		}
		t := time.Unix(quarter*15*60, 0)
		i := sort.Search(len(f.Days), func(i int) bool { return f.Days[i].Day.After(t) }) - 1
		if i < 0 {
			continue
		}
		day := &f.Days[i]
		c := day.Lanes[class]
		*funnelSteps[kind](&c) += n
		day.Lanes[class] = c
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range f.Days {
		day := &f.Days[i]
		for lane, c := range day.Lanes {
			day.Total.Add(c)
			t := f.Lanes[lane]
			t.Add(c)
			f.Lanes[lane] = t
		}
		f.Total.Add(day.Total)
	}
	return f, nil
}

// placeholders is "?,?,?" for n.
func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }
