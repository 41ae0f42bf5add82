package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// readReply reads one SMTP reply (all its lines) and returns its code and
// its last line.
func readReply(br *bufio.Reader) (int, string, error) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, "", err
		}
		if len(line) < 4 {
			return 0, "", fmt.Errorf("short reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, "", fmt.Errorf("bad reply line %q", strings.TrimSpace(line))
		}
		if line[3] != '-' {
			return code, strings.TrimSpace(line), nil
		}
	}
}

// idleConn is a session that said EHLO and then nothing.
type idleConn struct {
	c  net.Conn
	br *bufio.Reader
}

// command sends line and expects a reply with code want.
func (ic *idleConn) command(line string, want int) error {
	ic.c.SetDeadline(time.Now().Add(60 * time.Second))
	defer ic.c.SetDeadline(time.Time{})
	if _, err := io.WriteString(ic.c, line+"\r\n"); err != nil {
		return err
	}
	code, text, err := readReply(ic.br)
	if err == nil && code != want {
		err = fmt.Errorf("%s: %s", line, text)
	}
	return err
}

func openIdle(addr string) (*idleConn, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	ic := &idleConn{c: c, br: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	code, text, err := readReply(ic.br)
	if err == nil && code != 220 {
		err = fmt.Errorf("greeting %s", text)
	}
	if err == nil {
		err = ic.command("EHLO mjbench.local", 250)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return ic, nil
}

func runIdle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:2525", "SMTP address")
	conns := fs.Int("conns", 1000, "idle sessions to hold (each says EHLO, then nothing)")
	par := fs.Int("parallel", 50, "sessions being opened at once")
	hold := fs.Duration("hold", 5*time.Second, "hold them this long before measuring")
	rssPID := fs.Int("rss-pid", 0, "measure the memory of this process and its descendants")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var base memSample
	if *rssPID > 0 {
		base = sampleTree(*rssPID, true)
	}
	var (
		mu   sync.Mutex
		open []*idleConn
		errs errCount
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, *par)
	start := time.Now()
	for i := 0; i < *conns && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ic, err := openIdle(*addr)
			if err != nil {
				errs.add(err)
				return
			}
			mu.Lock()
			open = append(open, ic)
			mu.Unlock()
		}()
	}
	wg.Wait()
	opened := time.Since(start)
	select {
	case <-time.After(*hold):
	case <-ctx.Done():
	}
	var peak memSample
	if *rssPID > 0 {
		for i := 0; i < 3; i++ {
			peak = peakOf(peak, sampleTree(*rssPID, true))
			time.Sleep(300 * time.Millisecond)
		}
	}
	// Still served? Every session must answer NOOP.
	alive := 0
	for _, ic := range open {
		if ic.command("NOOP", 250) == nil {
			alive++
		}
		io.WriteString(ic.c, "QUIT\r\n")
		ic.c.Close()
	}
	out := map[string]any{
		"conns": *conns, "established": len(open), "alive": alive, "failed": errs.n,
		"open_seconds": round3(opened.Seconds()),
	}
	if errs.n > 0 {
		out["first_error"] = errs.first
	}
	if *rssPID > 0 {
		out["rss_base_mb"], out["rss_mb"] = mb(base.RSSKB), mb(peak.RSSKB)
		out["pss_base_mb"], out["pss_mb"] = mb(base.PSSKB), mb(peak.PSSKB)
		out["procs"] = peak.Procs
		if n := len(open); n > 0 {
			out["rss_per_conn_kb"] = round3(float64(peak.RSSKB-base.RSSKB) / float64(n))
			out["pss_per_conn_kb"] = round3(float64(peak.PSSKB-base.PSSKB) / float64(n))
		}
	}
	emit(stdout, *asJSON, out)
	if len(open) == 0 {
		return fmt.Errorf("no session opened: %s", errs.first)
	}
	return nil
}
