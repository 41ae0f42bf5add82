package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// record is one line of results.jsonl: one phase of one run of one system.
type record struct {
	System string         `json:"system"`
	Run    int            `json:"run"`
	Phase  string         `json:"phase"`
	M      map[string]any `json:"m"`
}

// row is one line of the table: a metric (phase.key) and whether higher is
// better.
type row struct {
	label, key, unit string
	higher           bool
}

var tableRows = []row{
	{"accepted msg/s ({accept.size} B, {accept.conns} conns, durable)", "accept.accept_msgs", "msg/s", true},
	{"  accept latency p50 at that load", "accept.p50_ms", "ms", false},
	{"  accept latency p99 at that load", "accept.p99_ms", "ms", false},
	{"accept latency p50 at {latency.accept_msgs} msg/s", "latency.p50_ms", "ms", false},
	{"accept latency p99 at {latency.accept_msgs} msg/s", "latency.p99_ms", "ms", false},
	{"end-to-end relayed msg/s", "accept.e2e_msgs", "msg/s", true},
	{"  CPU per message, accept + relay", "accept.cpu_us_per_msg", "us", false},
	{"RSS at rest", "big.rss_base_mb", "MiB", false},
	{"RSS peak, one 25 MB message in + out", "big.rss_peak_mb", "MiB", false},
	{"  PSS peak, same", "big.pss_peak_mb", "MiB", false},
	{"RSS with {idle.conns} idle connections", "idle.rss_mb", "MiB", false},
	{"  PSS with {idle.conns} idle connections", "idle.pss_mb", "MiB", false},
	{"transactional e2e p99, idle", "burst.idle_p99_ms", "ms", false},
	{"transactional e2e p50 during {burst.bulk} bulk burst", "burst.burst_p50_ms", "ms", false},
	{"transactional e2e p99 during {burst.bulk} bulk burst", "burst.burst_p99_ms", "ms", false},
	{"  bulk burst accepted msg/s", "burst.bulk_accept_msgs", "msg/s", true},
	{"  bulk burst all relayed after", "burst.bulk_e2e_seconds", "s", false},
}

// fillLabel replaces each {phase.key} in label with that metric's median
// (over all systems' runs), rounded to an integer.
func fillLabel(label string, vals map[string]map[string][]float64) string {
	for {
		i := strings.IndexByte(label, '{')
		j := strings.IndexByte(label, '}')
		if i < 0 || j < i {
			return label
		}
		var all []float64
		for _, sys := range vals {
			all = append(all, sys[label[i+1:j]]...)
		}
		v := "?"
		if len(all) > 0 {
			v = fmt.Sprintf("%.0f", summarize(all).med)
		}
		label = label[:i] + v + label[j+1:]
	}
}

// warnKeys are counters that should be zero (or equal to a total).
var warnKeys = []string{"errors", "failed", "bulk_errors", "probe_errors", "probes_skipped", "skipped"}

// stat is the median and range of one metric over the runs.
type stat struct {
	n             int
	med, min, max float64
}

func summarize(vals []float64) stat {
	if len(vals) == 0 {
		return stat{}
	}
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{n: len(s), med: med, min: s[0], max: s[len(s)-1]}
}

// fmtNum prints a number with precision that fits its size.
func fmtNum(f float64) string {
	switch a := math.Abs(f); {
	case a >= 100:
		return fmt.Sprintf("%.0f", f)
	case a >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

func (s stat) String() string {
	switch s.n {
	case 0:
		return "-"
	case 1:
		return fmtNum(s.med)
	}
	return fmt.Sprintf("%s (%s-%s)", fmtNum(s.med), fmtNum(s.min), fmtNum(s.max))
}

// advantage is how many times better mjrelay's median is than Postfix's
// (>1: mjrelay better), or NaN.
func advantage(mj, pf stat, higher bool) float64 {
	if mj.n == 0 || pf.n == 0 || mj.med <= 0 || pf.med <= 0 {
		return math.NaN()
	}
	if higher {
		return mj.med / pf.med
	}
	return pf.med / mj.med
}

// values collects, per system and phase.key, the numeric values of all runs.
func values(recs []record) map[string]map[string][]float64 {
	out := map[string]map[string][]float64{}
	for _, r := range recs {
		if out[r.System] == nil {
			out[r.System] = map[string][]float64{}
		}
		for k, v := range r.M {
			if f, ok := v.(float64); ok {
				key := r.Phase + "." + k
				out[r.System][key] = append(out[r.System][key], f)
			}
		}
	}
	return out
}

// renderTable prints the side-by-side table for systems a and b, the target
// checks and warnings about failed submissions.
func renderTable(w io.Writer, recs []record, a, b string, notes []string) {
	vals := values(recs)
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	runs := map[string]map[int]bool{}
	for _, r := range recs {
		if runs[r.System] == nil {
			runs[r.System] = map[int]bool{}
		}
		runs[r.System][r.Run] = true
	}
	fmt.Fprintf(w, "runs: %s %d, %s %d; cells: median (min-max)\n\n", a, len(runs[a]), b, len(runs[b]))
	lines := [][]string{{"metric", "unit", a, b, a + " advantage"}}
	adv := map[string]float64{}
	for _, r := range tableRows {
		sa, sb := summarize(vals[a][r.key]), summarize(vals[b][r.key])
		if sa.n == 0 && sb.n == 0 {
			continue
		}
		x := advantage(sa, sb, r.higher)
		adv[r.key] = x
		xs := "-"
		if !math.IsNaN(x) {
			xs = fmt.Sprintf("%.2fx", x)
		}
		lines = append(lines, []string{fillLabel(r.label, vals), r.unit, sa.String(), sb.String(), xs})
	}
	widths := make([]int, len(lines[0]))
	for _, l := range lines {
		for i, c := range l {
			widths[i] = max(widths[i], len(c))
		}
	}
	for i, l := range lines {
		var sb strings.Builder
		for j, c := range l {
			if j >= 2 {
				fmt.Fprintf(&sb, "  %*s", widths[j], c)
			} else {
				fmt.Fprintf(&sb, "%-*s  ", widths[j], c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
		if i == 0 {
			fmt.Fprintln(w, strings.Repeat("-", len(strings.TrimRight(sb.String(), " "))))
		}
	}
	fmt.Fprintln(w)
	for _, t := range []struct {
		label, key string
		want       float64
	}{{"accept", "accept.accept_msgs", 3}, {"relay", "accept.e2e_msgs", 2}} {
		x, ok := adv[t.key]
		verdict := "n/a"
		if ok && !math.IsNaN(x) {
			verdict = "NOT MET"
			if x >= t.want {
				verdict = "met"
			}
		}
		fmt.Fprintf(w, "target: %s %s >= %.0fx %s: %.2fx %s\n", a, t.label, t.want, b, x, verdict)
	}
	for _, r := range recs {
		var bad []string
		for _, k := range warnKeys {
			if f, ok := r.M[k].(float64); ok && f > 0 {
				bad = append(bad, fmt.Sprintf("%s=%v", k, f))
			}
		}
		for _, k := range []string{"first_error", "bulk_first_error", "probe_first_error"} {
			if s, ok := r.M[k].(string); ok {
				bad = append(bad, fmt.Sprintf("%s=%q", k, s))
			}
		}
		if len(bad) > 0 {
			fmt.Fprintf(w, "warning: %s run %d %s: %s\n", r.System, r.Run, r.Phase, strings.Join(bad, " "))
		}
	}
}

// readRecords parses results.jsonl, skipping blank lines.
func readRecords(r io.Reader) ([]record, error) {
	var recs []record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rec record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", ln, err)
		}
		recs = append(recs, rec)
	}
	return recs, sc.Err()
}

// multiFlag collects a repeated string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, "\n") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func runTable(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("table", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "results.jsonl", "results, one JSON record a line")
	out := fs.String("out", "", "also write the table here")
	a := fs.String("a", "mjrelay", "left system")
	b := fs.String("b", "postfix", "right system")
	var notes multiFlag
	fs.Var(&notes, "note", "a line printed above the table (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	recs, err := readRecords(f)
	if err != nil {
		return err
	}
	var sb strings.Builder
	renderTable(&sb, recs, *a, *b, notes)
	io.WriteString(stdout, sb.String())
	if *out != "" {
		return os.WriteFile(*out, []byte(sb.String()), 0o644)
	}
	return nil
}
