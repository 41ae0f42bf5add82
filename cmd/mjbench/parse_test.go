package main

import (
	"bufio"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseBenchHeaders(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	for _, tc := range []struct {
		name, in string
		kind     string
		sentNS   int64
		rest     string
	}{
		{"ours", string(msgHeader("probe-burst", 7, sent, false)) + "body\r\n", "probe-burst", sent.UnixNano(), "body\r\n"},
		{"bulk", string(msgHeader("bulk", 1, sent, true)) + "b", "bulk", sent.UnixNano(), "b"},
		{"relay added headers above", "Received: from x\r\n\tby y\r\nX-Mjbench-Kind: load\r\nx-mjbench-sent: 42\r\n\r\nz", "load", 42, "z"},
		{"none", "Subject: hi\r\n\r\nz", "unknown", 0, "z"},
		{"bad sent", "X-Mjbench-Kind: a\r\nX-Mjbench-Sent: soon\r\n\r\n", "a", 0, ""},
		{"bare LF", "X-Mjbench-Kind: a\nX-Mjbench-Sent: 5\n\nz", "a", 5, "z"},
		{"header only, no blank line", "X-Mjbench-Kind: a\r\nX-Mjbench-Sent: 5", "a", 5, ""},
		{"empty", "", "unknown", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			kind, sentNS, err := parseBenchHeaders(br)
			if err != nil {
				t.Fatal(err)
			}
			rest, _ := br.ReadString(0)
			if kind != tc.kind || sentNS != tc.sentNS || rest != tc.rest {
				t.Errorf("got %q %d rest %q, want %q %d rest %q", kind, sentNS, rest, tc.kind, tc.sentNS, tc.rest)
			}
		})
	}
}

func TestMsgSize(t *testing.T) {
	cases := []struct {
		kind string
		bulk bool
		size int
	}{{"load", false, 10240}, {"bulk", true, 10240}, {"probe-burst", false, 2048}, {"big", false, 25000000}, {"load", false, 10}}
	for size := 10240; size < 10240+80; size++ {
		cases = append(cases, struct {
			kind string
			bulk bool
			size int
		}{"load", false, size})
	}
	for _, tc := range cases {
		hdr := msgHeader(tc.kind, 0, time.Now(), tc.bulk)
		body := msgBody(tc.size, tc.kind, tc.bulk)
		got := len(hdr) + len(body)
		want := max(tc.size, len(hdr)+78)
		if got != want {
			t.Errorf("%s %d: message is %d bytes, want %d", tc.kind, tc.size, got, want)
		}
		for i, line := range strings.SplitAfter(string(body), "\r\n") {
			if len(line) > 78 || (line != "" && !strings.HasSuffix(line, "\r\n")) {
				t.Fatalf("%s: body line %d is %q", tc.kind, i, line)
			}
		}
	}
	if h := string(msgHeader("bulk", 3, time.Now(), true)); !strings.Contains(h, "List-Unsubscribe-Post: ") || !strings.Contains(h, "Precedence: list\r\n") {
		t.Errorf("bulk header lacks the mass-mailing headers:\n%s", h)
	}
	if h := string(msgHeader("probe", 3, time.Now(), false)); strings.Contains(h, "Precedence") || strings.Contains(h, "List-Unsubscribe") {
		t.Errorf("transactional header has mass-mailing headers:\n%s", h)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"10240", 10240, true}, {"10KB", 10000, true}, {"25MB", 25000000, true}, {"25mb", 25000000, true},
		{"1MiB", 1 << 20, true}, {"4KiB", 4096, true}, {" 7 K", 7000, true}, {"2M", 2000000, true},
		{"", 0, false}, {"-1", 0, false}, {"ten", 0, false}, {"1.5MB", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	for _, tc := range []struct {
		name string
		in   []float64
		p    float64
		want float64
	}{
		{"p50 of 1..100", hundred, 50, 50}, {"p99 of 1..100", hundred, 99, 99}, {"p100", hundred, 100, 100},
		{"p0", hundred, 0, 1}, {"one value", []float64{7}, 99, 7}, {"p50 of two", []float64{1, 2}, 50, 1},
		{"p99 of ten", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
	} {
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing should be NaN")
	}
	if got := durationsMS([]time.Duration{3 * time.Millisecond, time.Millisecond, 1500 * time.Microsecond}); !slices.Equal(got, []float64{1, 1.5, 3}) {
		t.Errorf("durationsMS = %v", got)
	}
}

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		code     int
		ok       bool
	}{
		{"one line", "220 ready\r\n", 220, true},
		{"multi line", "250-mjrelay\r\n250-PIPELINING\r\n250 SIZE 100\r\n", 250, true},
		{"bare code", "421\r\n", 421, true},
		{"short", "42\r\n", 0, false},
		{"code only and space", "354 \r\n", 354, true},
		{"garbage", "hello there\r\n", 0, false},
		{"cut", "250-a\r\n", 0, false},
	} {
		code, _, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
		if code != tc.code || (err == nil) != tc.ok {
			t.Errorf("%s: got %d, %v; want %d ok=%v", tc.name, code, err, tc.code, tc.ok)
		}
	}
}

func TestProcParsing(t *testing.T) {
	for _, tc := range []struct {
		stat string
		ppid int
		ok   bool
	}{
		{"1234 (smtpd) S 77 1234 1234 0 -1", 77, true},
		{"99 (my (odd) prog) R 5 99 99 0", 5, true},
		{"99 (a b) S", 0, false},
		{"garbage", 0, false},
	} {
		ppid, ok := parseStatPPID(tc.stat)
		if ppid != tc.ppid || ok != tc.ok {
			t.Errorf("parseStatPPID(%q) = %d, %v", tc.stat, ppid, ok)
		}
	}
	for _, tc := range []struct {
		stat string
		want int64
	}{
		{"12 (cleanup) S 1 12 12 0 -1 4194560 100 0 0 0 7 3 20 10 20 0 1 0 555", 40},
		{"12 (a) b) R 1 12 12 0 -1 0 0 0 0 0 1 1 0 0", 2},
		{"12 (short) S 1", 0},
	} {
		if got := statCPUTicks(tc.stat); got != tc.want {
			t.Errorf("statCPUTicks(%q) = %d, want %d", tc.stat, got, tc.want)
		}
	}
	status := "Name:\tsmtpd\nVmPeak:\t  20000 kB\nVmRSS:\t    7080 kB\nRssAnon:\t 1000 kB\n"
	for _, tc := range []struct {
		key  string
		want int64
	}{{"VmRSS", 7080}, {"VmPeak", 20000}, {"Pss", 0}, {"RssAnon", 1000}} {
		if got := parseKB(status, tc.key); got != tc.want {
			t.Errorf("parseKB(%s) = %d, want %d", tc.key, got, tc.want)
		}
	}
	parent := map[int]int{1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 30: 99}
	got := descendants(10, parent)
	slices.Sort(got)
	if !slices.Equal(got, []int{10, 11, 12, 13}) {
		t.Errorf("descendants(10) = %v", got)
	}
	if got := descendants(30, parent); !slices.Equal(got, []int{30}) {
		t.Errorf("descendants(30) = %v", got)
	}
	if p := peakOf(memSample{RSSKB: 10, PSSKB: 9, Procs: 1}, memSample{RSSKB: 20, PSSKB: 5, Procs: 3}); p != (memSample{RSSKB: 20, PSSKB: 9, Procs: 3}) {
		t.Errorf("peakOf = %+v", p)
	}
}

func TestWriteDotted(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		start    bool
		want     string
		endsLine bool
	}{
		{"plain", "a\r\nb\r\n", true, "a\r\nb\r\n", true},
		{"leading dot", ".a\r\n", true, "..a\r\n", true},
		{"not at line start", ".a\r\n", false, ".a\r\n", true},
		{"dot lines", "a\r\n.\r\n..b\r\nc.d\r\n", true, "a\r\n..\r\n...b\r\nc.d\r\n", true},
		{"no final CRLF", "a\r\nb", true, "a\r\nb", false},
		{"empty", "", true, "", true},
	} {
		var sb strings.Builder
		w := bufio.NewWriter(&sb)
		ends := writeDotted(w, []byte(tc.in), tc.start)
		w.Flush()
		if sb.String() != tc.want || ends != tc.endsLine {
			t.Errorf("%s: wrote %q (ends line %v), want %q (%v)", tc.name, sb.String(), ends, tc.want, tc.endsLine)
		}
	}
}
