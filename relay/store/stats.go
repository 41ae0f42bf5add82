package store

import (
	"sort"
	"strings"
	"time"
)

// StatKey is one per-minute counter: the stores keep their statistics as
// such counters, so that charts never scan messages.
type StatKey struct {
	Minute              int64 // unix minutes
	Kind, Class, Reason string
}

// StatVal is a counter's value: how many, and their latency's sum and
// maximum (deliveries).
type StatVal struct {
	N              int64
	LatSum, LatMax float64
}

// StatCounts gathers the counts a writer's batch adds; it is a Counter.
type StatCounts map[StatKey]*StatVal

// Count adds n of a kind at t.
func (c StatCounts) Count(t time.Time, kind, class, reason string, latency float64, n int) {
	k := StatKey{Minute: t.Unix() / 60, Kind: kind, Class: class, Reason: reason}
	v := c[k]
	if v == nil {
		v = &StatVal{}
		c[k] = v
	}
	v.N += int64(n)
	if latency > 0 {
		v.LatSum += latency
		v.LatMax = max(v.LatMax, latency)
	}
}

var failureKinds = map[string]bool{"failed": true, "refused": true, "mj_bounce": true, "mj_blocked": true, "mj_spam": true}

// StatsBuilder turns the per-minute counters of a window into Stats.
type StatsBuilder struct {
	st                *Stats
	since             time.Time
	step              time.Duration
	latSum            []float64
	latN              []int
	fails             map[[2]string]int
	totalSum          float64
	totalN            int
	FromMin, UntilMin int64 // the counters to read: minutes in [FromMin, UntilMin)
}

// NewStatsBuilder starts the Stats of [since, until) in buckets of step
// (at least a minute; at most 1440 buckets, the latest kept).
func NewStatsBuilder(since, until time.Time, step time.Duration) *StatsBuilder {
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
		Totals: map[string]int{}, ReceivedByClass: map[string]int{}, Failures: []ReasonCount{}, Deferrals: []ReasonCount{}}
	for i := range n {
		st.Buckets = append(st.Buckets, Bucket{Time: since.Add(time.Duration(i) * step).UTC(),
			Received: map[string]int{}, Final: map[string]int{}, Counts: map[string]int{}})
	}
	return &StatsBuilder{st: st, since: since, step: step, latSum: make([]float64, n), latN: make([]int, n),
		fails: map[[2]string]int{}, FromMin: since.Unix() / 60, UntilMin: (until.Unix() + 59) / 60}
}

// Add counts one counter of the window.
func (b *StatsBuilder) Add(k StatKey, v StatVal) {
	i := int(time.Unix(k.Minute*60, 0).Sub(b.since) / b.step)
	if i < 0 || i >= len(b.st.Buckets) || strings.HasPrefix(k.Kind, "rcpt_") { // the funnel's
		return
	}
	bk, st, cnt := &b.st.Buckets[i], b.st, int(v.N)
	bk.Counts[k.Kind] += cnt
	st.Totals[k.Kind] += cnt
	switch k.Kind {
	case "received":
		bk.Received[k.Class] += cnt
		st.ReceivedByClass[k.Class] += cnt
	case "final":
		bk.Final[k.Class] += cnt
	case "delivered": // sandboxed mail never reached Mailjet
		b.latSum[i] += v.LatSum
		b.latN[i] += cnt
		bk.LatencyMaxMS = max(bk.LatencyMaxMS, v.LatMax)
		b.totalSum += v.LatSum
		b.totalN += cnt
		st.LatencyMaxMS = max(st.LatencyMaxMS, v.LatMax)
	}
	if failureKinds[k.Kind] || k.Kind == "deferred" {
		b.fails[[2]string{k.Kind, k.Reason}] += cnt
	}
}

// Stats returns the window's Stats.
func (b *StatsBuilder) Stats() *Stats {
	st := b.st
	for i := range st.Buckets {
		if b.latN[i] > 0 {
			st.Buckets[i].LatencyAvgMS = b.latSum[i] / float64(b.latN[i])
		}
	}
	if b.totalN > 0 {
		st.LatencyAvgMS = b.totalSum / float64(b.totalN)
	}
	for k, v := range b.fails {
		rc := ReasonCount{Kind: k[0], Reason: k[1], N: v}
		if rc.Kind == "deferred" {
			st.Deferrals = append(st.Deferrals, rc)
		} else {
			st.Failures = append(st.Failures, rc)
		}
	}
	byCount(st.Failures)
	byCount(st.Deferrals)
	return st
}

// byCount sorts reasons largest first.
func byCount(rs []ReasonCount) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.N != b.N {
			return a.N > b.N
		}
		return a.Kind+a.Reason < b.Kind+b.Reason
	})
}

// Rows are a query's rows (database/sql's or pgx's).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// AddRows adds the counters rows hold: minute, kind, class, reason, n,
// lat_sum, lat_max.
func (b *StatsBuilder) AddRows(rows Rows) error {
	for rows.Next() {
		var k StatKey
		var v StatVal
		if err := rows.Scan(&k.Minute, &k.Kind, &k.Class, &k.Reason, &v.N, &v.LatSum, &v.LatMax); err != nil {
			return err
		}
		b.Add(k, v)
	}
	return rows.Err()
}
