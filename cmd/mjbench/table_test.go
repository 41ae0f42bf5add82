package main

import (
	"math"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want stat
		str  string
	}{
		{nil, stat{}, "-"},
		{[]float64{5}, stat{1, 5, 5, 5}, "5.00"},
		{[]float64{300, 100, 200}, stat{3, 200, 100, 300}, "200 (100-300)"},
		{[]float64{4, 1, 3, 2}, stat{4, 2.5, 1, 4}, "2.50 (1.00-4.00)"},
		{[]float64{12.34, 15, 11}, stat{3, 12.34, 11, 15}, "12.3 (11.0-15.0)"},
	} {
		got := summarize(tc.in)
		if got != tc.want || got.String() != tc.str {
			t.Errorf("summarize(%v) = %+v %q, want %+v %q", tc.in, got, got.String(), tc.want, tc.str)
		}
	}
}

func TestAdvantage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mj, pf float64
		higher bool
		want   float64
	}{
		{"throughput", 3000, 1000, true, 3},
		{"latency", 10, 40, false, 4},
		{"worse memory", 100, 50, false, 0.5},
		{"no data", 0, 50, true, math.NaN()},
	} {
		got := advantage(stat{n: 1, med: tc.mj}, stat{n: 1, med: tc.pf}, tc.higher)
		if !(got == tc.want || math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

const sampleResults = `
{"system":"mjrelay","run":1,"phase":"accept","m":{"accept_msgs":3000,"e2e_msgs":1500,"conns":32,"size":10240,"errors":0}}
{"system":"postfix","run":1,"phase":"accept","m":{"accept_msgs":700,"e2e_msgs":900,"conns":32,"size":10240,"errors":2,"first_error":"451 4.3.0 try later"}}
{"system":"mjrelay","run":2,"phase":"accept","m":{"accept_msgs":3400,"e2e_msgs":1700,"conns":32,"size":10240}}
{"system":"postfix","run":2,"phase":"accept","m":{"accept_msgs":800,"e2e_msgs":1000,"conns":32,"size":10240}}
{"system":"mjrelay","run":1,"phase":"idle","m":{"conns":1000,"rss_mb":20,"pss_mb":19}}
{"system":"postfix","run":1,"phase":"idle","m":{"conns":1000,"rss_mb":9000,"pss_mb":1200}}
`

func TestRenderTable(t *testing.T) {
	recs, err := readRecords(strings.NewReader(sampleResults))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	renderTable(&sb, recs, "mjrelay", "postfix", []string{"date: today"})
	out := sb.String()
	for _, want := range []string{
		"date: today\n",
		"runs: mjrelay 2, postfix 2",
		"accepted msg/s (10240 B, 32 conns, durable)",
		"3200 (3000-3400)",
		"750 (700-800)",
		"4.27x",
		"RSS with 1000 idle connections",
		"450.00x",
		"target: mjrelay accept >= 3x postfix: 4.27x met",
		"target: mjrelay relay >= 2x postfix: 1.68x NOT MET",
		`warning: postfix run 1 accept: errors=2 first_error="451 4.3.0 try later"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "burst") || strings.Contains(out, "warning: mjrelay") {
		t.Errorf("rows without data or warnings without cause:\n%s", out)
	}
	// The columns line up: every data row is as wide as the header's rule.
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "metric") {
			rule := len(lines[i+1])
			for _, row := range lines[i+2:] {
				if row == "" {
					break
				}
				if len(row) != rule {
					t.Errorf("row %q is %d wide, rule %d", row, len(row), rule)
				}
			}
		}
	}
	if _, err := readRecords(strings.NewReader("{not json}\n")); err == nil {
		t.Error("bad line accepted")
	}
}

func TestFillLabel(t *testing.T) {
	vals := map[string]map[string][]float64{"a": {"idle.conns": {1000, 1000}}, "b": {"idle.conns": {1000}}}
	for _, tc := range []struct{ in, want string }{
		{"RSS with {idle.conns} idle", "RSS with 1000 idle"},
		{"no template", "no template"},
		{"{missing.key} x", "? x"},
		{"unclosed {idle.conns", "unclosed {idle.conns"},
	} {
		if got := fillLabel(tc.in, vals); got != tc.want {
			t.Errorf("fillLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
