package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Headers the load generator writes and the sink reads.
const (
	hdrKind = "X-Mjbench-Kind"
	hdrSent = "X-Mjbench-Sent"
)

// msgHeader is the header block of message seq of the given kind, sent at
// sent. Bulk messages carry what Odoo's mass mailing adds (and what the
// relay's bulk lane recognises): List-Unsubscribe(-Post) and Precedence.
func msgHeader(kind string, seq int, sent time.Time, bulk bool) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Bench <bench@example.com>\r\nTo: client@example.org\r\n")
	fmt.Fprintf(&b, "Subject: mjbench %s %d\r\n", kind, seq)
	fmt.Fprintf(&b, "Message-Id: <%s.%d.%d@mjbench.test>\r\n", kind, seq, sent.UnixNano())
	fmt.Fprintf(&b, "Date: %s\r\n", sent.UTC().Format(time.RFC1123Z))
	if bulk {
		b.WriteString("List-Unsubscribe: <https://odoo.example.com/mailing/7/unsubscribe?res_id=1>\r\n")
		b.WriteString("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nPrecedence: list\r\n")
	}
	fmt.Fprintf(&b, "%s: %s\r\n%s: %d\r\n", hdrKind, kind, hdrSent, sent.UnixNano())
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	return []byte(b.String())
}

// msgBody is a body of 76-character lines (the last one or two shorter) so
// that a message of kind is size bytes, give or take the digits of its
// sequence number (at least one line).
func msgBody(size int, kind string, bulk bool) []byte {
	const full = 78 // 76 + CRLF
	room := size - len(msgHeader(kind, 0, time.Now(), bulk))
	if room < full {
		room = full
	}
	n, rest := room/full, room%full
	var tail []int // lengths of the short last lines, CRLF included
	switch {
	case rest >= 3:
		tail = []int{rest}
	case rest > 0: // too short for a line: split the last full one in two
		n--
		tail = []int{full + rest - 40, 40}
	}
	body := make([]byte, 0, room)
	for i := 0; i < n; i++ {
		body = append(body, strings.Repeat("x", full-2)+"\r\n"...)
	}
	for _, l := range tail {
		body = append(body, strings.Repeat("x", l-2)+"\r\n"...)
	}
	return body
}

// parseBenchHeaders reads the header block from r (up to the blank line)
// and returns the X-Mjbench-Kind and X-Mjbench-Sent values (unknown and 0
// when absent).
func parseBenchHeaders(r *bufio.Reader) (kind string, sentNS int64, err error) {
	kind = "unknown"
	for {
		line, err := r.ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			if err == io.EOF {
				err = nil
			}
			return kind, sentNS, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return kind, sentNS, nil
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch {
		case strings.EqualFold(name, hdrKind):
			kind = val
		case strings.EqualFold(name, hdrSent):
			sentNS, _ = strconv.ParseInt(val, 10, 64)
		}
	}
}

// parseSize reads "10240", "10KB", "25MB" (decimal units) or "1MiB".
func parseSize(s string) (int, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := 1
	for _, u := range []struct {
		suf string
		m   int
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"KB", 1000}, {"MB", 1000 * 1000}, {"K", 1000}, {"M", 1000 * 1000}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// percentile is the p-th percentile (0-100, nearest rank) of sorted.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// durationsMS converts durations to sorted milliseconds.
func durationsMS(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	sort.Float64s(out)
	return out
}

// round3 keeps three decimals (JSON output).
func round3(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return math.Round(f*1000) / 1000
}

// emit prints v as one JSON line, or its fields as "key: value" lines.
func emit(w io.Writer, asJSON bool, v map[string]any) {
	if asJSON {
		b, _ := json.Marshal(v)
		fmt.Fprintln(w, string(b))
		return
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%-22s %v\n", k+":", v[k])
	}
}

// waitGreeting dials addr until it answers with a 220 greeting or timeout
// passes.
func waitGreeting(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("QUIT\r\n"))
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "220") {
				return nil
			}
			err = fmt.Errorf("greeting %q: %v", strings.TrimSpace(line), rerr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v", addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
