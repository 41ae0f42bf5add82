package inspect

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

var failureKinds = map[string]bool{"failed": true, "refused": true, "mj_bounce": true, "mj_blocked": true, "mj_spam": true}

// Stats returns the counters of [since, until) in buckets of step (at least
// a minute; at most 1440 buckets), from the per-minute counters the writer
// keeps.
func (s *Store) Stats(ctx context.Context, since, until time.Time, step time.Duration) (*store.Stats, error) {
	step = max(step.Truncate(time.Minute), time.Minute)
	since = since.Truncate(step)
	if !until.After(since) {
		until = since.Add(step)
	}
	n := int((until.Sub(since) + step - 1) / step)
	if n > 1440 {
		n = 1440
		since = until.Add(-time.Duration(n) * step).Truncate(step)
	}
	st := &store.Stats{Since: since.UTC(), Until: until.UTC(), StepSeconds: int(step / time.Second),
		Totals: map[string]int{}, ReceivedByClass: map[string]int{}, Failures: []store.ReasonCount{}}
	for i := range n {
		st.Buckets = append(st.Buckets, store.Bucket{Time: since.Add(time.Duration(i) * step).UTC(),
			Received: map[string]int{}, Final: map[string]int{}, Counts: map[string]int{}})
	}
	// Each bucket's latency sum and count, for its mean.
	bucketLatSum, bucketLatN := make([]float64, n), make([]int, n)
	rows, err := s.rdb.QueryContext(ctx, `SELECT minute, kind, class, reason, n, lat_sum, lat_max FROM stats
		WHERE minute >= ? AND minute < ?`, since.Unix()/60, (until.Unix()+59)/60)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	fails := map[[2]string]int{}
	var latSum float64
	var latN int
	for rows.Next() {
		var minute int64
		var kind, class, reason string
		var cnt int
		var ls, lm float64
		if err := rows.Scan(&minute, &kind, &class, &reason, &cnt, &ls, &lm); err != nil {
			return nil, err
		}
		i := int(time.Unix(minute*60, 0).Sub(since) / step)
		if i < 0 || i >= n || strings.HasPrefix(kind, "rcpt_") { // the funnel's
			continue
		}
		b := &st.Buckets[i]
		b.Counts[kind] += cnt
		st.Totals[kind] += cnt
		switch kind {
		case "received":
			b.Received[class] += cnt
			st.ReceivedByClass[class] += cnt
		case "final":
			b.Final[class] += cnt
		case "delivered": // sandboxed mail never reached Mailjet
			bucketLatSum[i] += ls
			bucketLatN[i] += cnt
			b.LatencyMaxMS = max(b.LatencyMaxMS, lm)
			latSum += ls
			latN += cnt
			st.LatencyMaxMS = max(st.LatencyMaxMS, lm)
		}
		if failureKinds[kind] || kind == "deferred" {
			fails[[2]string{kind, reason}] += cnt
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range st.Buckets {
		if bucketLatN[i] > 0 {
			st.Buckets[i].LatencyAvgMS = bucketLatSum[i] / float64(bucketLatN[i])
		}
	}
	if latN > 0 {
		st.LatencyAvgMS = latSum / float64(latN)
	}
	st.Deferrals = []store.ReasonCount{}
	for k, v := range fails {
		rc := store.ReasonCount{Kind: k[0], Reason: k[1], N: v}
		if rc.Kind == "deferred" {
			st.Deferrals = append(st.Deferrals, rc)
		} else {
			st.Failures = append(st.Failures, rc)
		}
	}
	byCount(st.Failures)
	byCount(st.Deferrals)
	return st, nil
}

// byCount sorts reasons largest first.
func byCount(rs []store.ReasonCount) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.N != b.N {
			return a.N > b.N
		}
		return a.Kind+a.Reason < b.Kind+b.Reason
	})
}
