package inspect

import (
	"context"
	"sort"
	"time"
)

// Stats are the per-minute counters the writer keeps, bucketed for charts.
// Kinds: received, final (left the queue), attempt, delivered (accepted by
// Mailjet), sandboxed, deferred, failed, deleted, refused, and mj_EVENT for
// Mailjet's events (mj_unjoined: events of messages the store does not
// know).
type Stats struct {
	Since       time.Time `json:"since"`
	Until       time.Time `json:"until"`
	StepSeconds int       `json:"step_seconds"`
	Buckets     []Bucket  `json:"buckets"`
	// Totals are the window's counts by kind; ReceivedByClass by lane.
	Totals          map[string]int `json:"totals"`
	ReceivedByClass map[string]int `json:"received_by_class"`
	// Failures are failed, refused, bounced, blocked and spam counts by
	// reason, largest first.
	Failures []ReasonCount `json:"failures"`
	// LatencyAvgMS is the mean time from receipt to Mailjet's acceptance.
	LatencyAvgMS float64 `json:"latency_avg_ms"`
	LatencyMaxMS float64 `json:"latency_max_ms"`
}

// Bucket is one step of the window.
type Bucket struct {
	Time     time.Time      `json:"time"`
	Received map[string]int `json:"received"` // by class
	Final    map[string]int `json:"final"`    // by class
	Counts   map[string]int `json:"counts"`   // by kind
	// Latency of the messages accepted by Mailjet in this bucket.
	LatencyAvgMS float64 `json:"latency_avg_ms"`
	LatencyMaxMS float64 `json:"latency_max_ms"`
	latSum       float64
	latN         int
}

// ReasonCount is one line of the failure breakdown.
type ReasonCount struct {
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
	N      int    `json:"n"`
}

var failureKinds = map[string]bool{"failed": true, "refused": true, "mj_bounce": true, "mj_blocked": true, "mj_spam": true}

// Stats returns the counters of [since, until) in buckets of step (at least
// a minute; at most 1440 buckets).
func (s *Store) Stats(ctx context.Context, since, until time.Time, step time.Duration) (*Stats, error) {
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
	st := &Stats{Since: since.UTC(), Until: until.UTC(), StepSeconds: int(step / time.Second),
		Totals: map[string]int{}, ReceivedByClass: map[string]int{}, Failures: []ReasonCount{}}
	for i := range n {
		st.Buckets = append(st.Buckets, Bucket{Time: since.Add(time.Duration(i) * step).UTC(),
			Received: map[string]int{}, Final: map[string]int{}, Counts: map[string]int{}})
	}
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
		if i < 0 || i >= n {
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
		case "delivered", "sandboxed":
			b.latSum += ls
			b.latN += cnt
			b.LatencyMaxMS = max(b.LatencyMaxMS, lm)
			latSum += ls
			latN += cnt
			st.LatencyMaxMS = max(st.LatencyMaxMS, lm)
		}
		if failureKinds[kind] {
			fails[[2]string{kind, reason}] += cnt
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range st.Buckets {
		if b := &st.Buckets[i]; b.latN > 0 {
			b.LatencyAvgMS = b.latSum / float64(b.latN)
		}
	}
	if latN > 0 {
		st.LatencyAvgMS = latSum / float64(latN)
	}
	for k, v := range fails {
		st.Failures = append(st.Failures, ReasonCount{Kind: k[0], Reason: k[1], N: v})
	}
	sort.Slice(st.Failures, func(i, j int) bool {
		a, b := st.Failures[i], st.Failures[j]
		if a.N != b.N {
			return a.N > b.N
		}
		return a.Kind+a.Reason < b.Kind+b.Reason
	})
	return st, nil
}
