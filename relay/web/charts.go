package web

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

// Charts are drawn on the server as inline SVG: the template renders the
// geometry computed here (numbers only), so the page needs no script and no
// CDN.

const (
	chartW, chartH                       = 640, 170
	padLeft, padRight, padTop, padBottom = 46, 10, 10, 22
)

type lineChart struct {
	Title  string
	Desc   string
	W, H   int
	Series []chartSeries
	YTicks []tick
	XTicks []tick
	Empty  bool
	// Frame is the plot area, CX, CY its center.
	X0, Y0, X1, Y1, CX, CY float64
}

type chartSeries struct {
	Name   string
	Class  string // CSS class: s1..s4, bad
	Points string
	Total  string
}

type tick struct {
	X, Y  float64
	Label string
	Class string // first, last: anchored so that the label stays inside
	// Time is the tick's time (RFC 3339) for the script to write in the
	// browser's time zone; Fmt how ("hm" or "dhm").
	Time, Fmt string
}

// newLineChart lays out series of equal length over times.
func newLineChart(title, unit string, times []time.Time, stepSec int, series ...seriesData) lineChart {
	c := lineChart{Title: title, W: chartW, H: chartH, X0: padLeft, Y0: padTop, X1: chartW - padRight, Y1: chartH - padBottom}
	c.CX, c.CY = (c.X0+c.X1)/2, (c.Y0+c.Y1)/2
	top := 0.0
	for _, s := range series {
		for _, v := range s.values {
			top = max(top, v)
		}
	}
	c.Empty = top == 0
	top = niceCeil(top)
	n := len(times)
	x := func(i int) float64 {
		if n <= 1 {
			return c.X0
		}
		return c.X0 + float64(i)*(c.X1-c.X0)/float64(n-1)
	}
	y := func(v float64) float64 { return c.Y1 - v/top*(c.Y1-c.Y0) }
	var desc []string
	for _, s := range series {
		var b strings.Builder
		sum := 0.0
		for i, v := range s.values {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatFloat(x(i), 'f', 1, 64) + "," + strconv.FormatFloat(y(v), 'f', 1, 64))
			sum += v
		}
		total := s.total(sum, s.values)
		c.Series = append(c.Series, chartSeries{Name: s.name, Class: s.class, Points: b.String(), Total: total})
		desc = append(desc, s.name+" "+total)
	}
	for _, f := range []float64{0, 0.5, 1} {
		c.YTicks = append(c.YTicks, tick{X: c.X0 - 6, Y: y(top * f), Label: formatValue(top*f, unit)})
	}
	if n > 1 {
		for j, i := range []int{0, n / 2, n - 1} {
			t := times[i].Add(time.Duration(stepSec) * time.Second).UTC()
			label, f := t.Format("15:04"), "hm"
			if stepSec >= 3600 {
				label, f = t.Format("01-02 15:04"), "dhm"
			}
			c.XTicks = append(c.XTicks, tick{X: x(i), Y: c.Y1 + 16, Label: label, Class: []string{"first", "", "last"}[j],
				Time: t.Format(time.RFC3339), Fmt: f})
		}
		c.XTicks[2].Label += " UTC"
	}
	c.Desc = title + ": " + strings.Join(desc, ", ")
	return c
}

type seriesData struct {
	name, class string
	values      []float64
	// summary: "sum" (default), "last", "max" or "avg".
	summary string
	unit    string
}

func (s seriesData) total(sum float64, values []float64) string {
	switch s.summary {
	case "last":
		if len(values) == 0 {
			return "0"
		}
		return formatValue(values[len(values)-1], s.unit)
	case "max":
		m := 0.0
		for _, v := range values {
			m = max(m, v)
		}
		return "max " + formatValue(m, s.unit)
	case "avg":
		n, t := 0, 0.0
		for _, v := range values {
			if v > 0 {
				n++
				t += v
			}
		}
		if n == 0 {
			return "-"
		}
		return "avg " + formatValue(t/float64(n), s.unit)
	}
	return formatValue(sum, s.unit)
}

// niceCeil rounds up to 1, 2 or 5 × a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "ms":
		return formatMS(v)
	}
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func formatMS(ms float64) string {
	switch {
	case ms <= 0:
		return "0"
	case ms < 1000:
		return fmt.Sprintf("%.0f ms", ms)
	case ms < 60_000:
		return fmt.Sprintf("%.1f s", ms/1000)
	case ms < 3_600_000:
		return fmt.Sprintf("%.1f min", ms/60_000)
	}
	return fmt.Sprintf("%.1f h", ms/3_600_000)
}

// dashboardCharts builds the dashboard's charts from a stats report. In
// sandbox mode nothing reaches Mailjet: no series claims it did.
func dashboardCharts(rep *StatsReport, sandbox bool) []lineChart {
	st := rep.Stats
	times := make([]time.Time, len(st.Buckets))
	col := func(f func(b *store.Bucket) float64) []float64 {
		out := make([]float64, len(st.Buckets))
		for i := range st.Buckets {
			out[i] = f(&st.Buckets[i])
		}
		return out
	}
	for i, b := range st.Buckets {
		times[i] = b.Time
	}
	per := "per " + (time.Duration(st.StepSeconds) * time.Second).String()
	per = strings.TrimSuffix(strings.TrimSuffix(per, "0s"), "0m")
	lanes := newLineChart("Messages received "+per+", by lane", "", times, st.StepSeconds,
		seriesData{name: "transactional", class: "s1", values: col(func(b *store.Bucket) float64 { return float64(b.Received["transactional"]) })},
		seriesData{name: "bulk", class: "s2", values: col(func(b *store.Bucket) float64 { return float64(b.Received["bulk"]) })},
		seriesData{name: "refused", class: "bad", values: col(func(b *store.Bucket) float64 { return float64(b.Counts["refused"]) })})
	var out []seriesData
	if !sandbox {
		out = append(out, seriesData{name: "accepted by Mailjet", class: "s1", values: col(func(b *store.Bucket) float64 {
			return float64(b.Counts["delivered"])
		})})
	}
	if sandbox || st.Totals["sandboxed"] > 0 {
		out = append(out, seriesData{name: "sandboxed, not sent", class: "s4", values: col(func(b *store.Bucket) float64 {
			return float64(b.Counts["sandboxed"])
		})})
	}
	out = append(out,
		seriesData{name: "deferred", class: "s3", values: col(func(b *store.Bucket) float64 { return float64(b.Counts["deferred"]) })},
		seriesData{name: "failed, bounced, blocked", class: "bad", values: col(func(b *store.Bucket) float64 {
			return float64(b.Counts["failed"] + b.Counts["mj_bounce"] + b.Counts["mj_blocked"])
		})})
	outcomes := newLineChart("Outcomes "+per, "", times, st.StepSeconds, out...)
	var depth []seriesData
	for i, lane := range []string{"transactional", "bulk"} {
		if d, ok := rep.QueueDepth[lane]; ok {
			v := make([]float64, len(d))
			for j, n := range d {
				v[j] = float64(n)
			}
			depth = append(depth, seriesData{name: lane, class: []string{"s1", "s2"}[i], values: v, summary: "last"})
		}
	}
	charts := []lineChart{lanes, outcomes}
	if len(depth) > 0 {
		charts = append(charts, newLineChart("Queue depth, by lane", "", times, st.StepSeconds, depth...))
	}
	if !sandbox {
		charts = append(charts, newLineChart("Delivery latency (receipt to Mailjet's acceptance)", "ms", times, st.StepSeconds,
			seriesData{name: "average", class: "s1", unit: "ms", summary: "avg", values: col(func(b *store.Bucket) float64 { return b.LatencyAvgMS })},
			seriesData{name: "slowest", class: "s3", unit: "ms", summary: "max", values: col(func(b *store.Bucket) float64 { return b.LatencyMaxMS })}))
	}
	return charts
}

// failureBar is one line of the failures-by-reason chart.
type failureBar struct {
	Kind, Reason string
	N            int
	Pct          float64
	// Link lists these messages.
	Link string
}

func failureBars(fs []store.ReasonCount, limit int, window string) []failureBar {
	var out []failureBar
	top := 1
	for _, f := range fs {
		top = max(top, f.N)
	}
	kinds := map[string][2]string{"failed": {"failed", "failed"}, "refused": {"refused", "refused"},
		"mj_bounce": {"bounced", "bounced"}, "mj_blocked": {"blocked", "blocked"}, "mj_spam": {"spam", "spam"},
		"deferred": {"deferred", "deferred"}}
	for i, f := range fs {
		if i == limit {
			break
		}
		k := kinds[f.Kind]
		reason := f.Reason
		if reason == "" {
			reason = "(no reason given)"
		}
		q := url.Values{"state": {k[1]}, "since": {window}}
		if f.Reason != "" {
			q.Set("reason", f.Reason)
		}
		out = append(out, failureBar{Kind: k[0], Reason: reason, N: f.N, Pct: math.Max(1, 100*float64(f.N)/float64(top)),
			Link: "/messages?" + q.Encode()})
	}
	return out
}
