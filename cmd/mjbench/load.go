package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// makeMsg builds message i (header and body) just before it is sent.
type makeMsg func(i int) (hdr, body []byte)

// closedLoop sends n messages as fast as the sessions allow, each session
// starting its next message as soon as the previous one is acknowledged.
// It returns the MAIL→reply time of each acknowledged message.
func closedLoop(ctx context.Context, cls []*smtpClient, n int, mk makeMsg, errs *errCount) []time.Duration {
	var next atomic.Int64
	per := make([][]time.Duration, len(cls))
	var wg sync.WaitGroup
	for s, c := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				hdr, body := mk(i)
				d, err := c.send(hdr, body)
				if err != nil {
					errs.add(err)
					continue
				}
				per[s] = append(per[s], d)
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, p := range per {
		all = append(all, p...)
	}
	return all
}

// openLoop starts one message every `every` on a free session, whether or
// not earlier ones are done, until n were started (n <= 0: until stop
// returns true). A tick that finds every session busy is skipped and
// counted. It returns the MAIL→reply times of the acknowledged messages.
func openLoop(ctx context.Context, cls []*smtpClient, every time.Duration, n int, stop func() bool, mk makeMsg, errs *errCount) (lats []time.Duration, started, skipped int) {
	free := make(chan *smtpClient, len(cls))
	for _, c := range cls {
		free <- c
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; (n <= 0 || started < n) && ctx.Err() == nil; i++ {
		<-tick.C
		if stop != nil && stop() {
			break
		}
		select {
		case c := <-free:
			started++
			wg.Add(1)
			go func(seq int) {
				defer wg.Done()
				hdr, body := mk(seq)
				d, err := c.send(hdr, body)
				free <- c
				if err != nil {
					errs.add(err)
					return
				}
				mu.Lock()
				lats = append(lats, d)
				mu.Unlock()
			}(started - 1)
		default:
			skipped++
		}
	}
	wg.Wait()
	return lats, started, skipped
}

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:2525", "SMTP address of the system under test")
	conns := fs.Int("conns", 32, "parallel SMTP sessions")
	sizeS := fs.String("size", "10240", "message size (bytes, or 10KB, 25MB)")
	n := fs.Int("n", 20000, "messages to send")
	rate := fs.Float64("rate", 0, "messages per second, open loop (0: as fast as acknowledged)")
	auth := fs.String("auth", "", "user:pass for AUTH PLAIN (empty: no AUTH)")
	kind := fs.String("kind", "load", "X-Mjbench-Kind of these messages (the sink counts per kind)")
	bulk := fs.Bool("bulk", false, "add mass-mailing headers (List-Unsubscribe-Post, Precedence: list)")
	sink := fs.String("sink", "", "sink HTTP URL: wait until all accepted messages arrived there (end to end)")
	wait := fs.Duration("wait", 5*time.Minute, "how long to wait for the sink")
	rssPID := fs.Int("rss-pid", 0, "sample the memory of this process and its descendants")
	rssEvery := fs.Duration("rss-every", 20*time.Millisecond, "memory sampling interval")
	cpuPID := fs.Int("cpu-pid", 0, "report the CPU time this process and its descendants use until the sink has every message")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	size, err := parseSize(*sizeS)
	if err != nil {
		return err
	}
	body := msgBody(size, *kind, *bulk)
	mk := func(i int) ([]byte, []byte) { return msgHeader(*kind, i, time.Now(), *bulk), body }
	sc := sinkClient{*sink}
	if *sink != "" {
		if err := sc.reset(*kind); err != nil {
			return err
		}
	}
	var smp *sampler
	if *rssPID > 0 {
		smp = startSampler(*rssPID, *rssEvery, true)
	}
	var cpu0 time.Duration
	if *cpuPID > 0 {
		cpu0 = treeCPU(*cpuPID)
	}
	cls, err := dialAll(*addr, *auth, *conns)
	if err != nil {
		return err
	}
	var errs errCount
	var lats []time.Duration
	skipped := 0
	start := time.Now()
	if *rate > 0 {
		lats, _, skipped = openLoop(ctx, cls, time.Duration(float64(time.Second) / *rate), *n, nil, mk, &errs)
	} else {
		lats = closedLoop(ctx, cls, *n, mk, &errs)
	}
	took := time.Since(start)
	for _, c := range cls {
		c.close()
	}
	ms := durationsMS(lats)
	out := map[string]any{
		"sent": len(lats), "errors": errs.n, "skipped": skipped, "size": len(msgHeader(*kind, 0, start, *bulk)) + len(body),
		"conns": *conns, "seconds": round3(took.Seconds()), "accept_msgs": round3(float64(len(lats)) / took.Seconds()),
		"p50_ms": round3(percentile(ms, 50)), "p99_ms": round3(percentile(ms, 99)), "max_ms": round3(percentile(ms, 100)),
	}
	if errs.n > 0 {
		out["first_error"] = errs.first
	}
	var werr error
	if *sink != "" {
		k, err := sc.waitArrived(*kind, len(lats), *wait)
		werr = err
		out["arrived"] = k.Count
		if k.Count > 0 {
			e2e := time.Duration(k.LastNS - start.UnixNano())
			out["e2e_seconds"] = round3(e2e.Seconds())
			out["e2e_msgs"] = round3(float64(k.Count) / e2e.Seconds())
		}
		if e2e, err := sc.latencies(*kind); err == nil {
			out["e2e_p50_ms"], out["e2e_p99_ms"] = round3(percentile(e2e, 50)), round3(percentile(e2e, 99))
		}
	}
	if *cpuPID > 0 {
		cpu := treeCPU(*cpuPID) - cpu0
		out["cpu_seconds"] = round3(cpu.Seconds())
		if len(lats) > 0 {
			out["cpu_us_per_msg"] = round3(float64(cpu.Microseconds()) / float64(len(lats)))
		}
	}
	if smp != nil {
		base, peak := smp.stop()
		out["rss_base_mb"], out["rss_peak_mb"] = mb(base.RSSKB), mb(peak.RSSKB)
		out["pss_base_mb"], out["pss_peak_mb"] = mb(base.PSSKB), mb(peak.PSSKB)
		out["procs_peak"] = peak.Procs
	}
	emit(stdout, *asJSON, out)
	if werr != nil {
		return werr
	}
	if len(lats) == 0 {
		return fmt.Errorf("no message accepted: %s", errs.first)
	}
	return nil
}

func runPing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:2525", "SMTP address")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return waitGreeting(*addr, *timeout)
}
