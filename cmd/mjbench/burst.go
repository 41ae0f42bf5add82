package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// runBurst measures the end-to-end latency of transactional mail (probes,
// one every --probe-every) first on an idle system, then while a bulk burst
// (mass-mailing messages, submitted flat out over --bulk-conns sessions) is
// accepted and relayed. Probes run from the start of the burst until the
// sink has received every bulk message, so they see both the intake and the
// backlog. Latency is the sink's arrival time minus the X-Mjbench-Sent
// header, written just before MAIL FROM.
func runBurst(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("burst", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:2525", "SMTP address of the system under test")
	auth := fs.String("auth", "", "user:pass for AUTH PLAIN")
	sink := fs.String("sink", "", "sink HTTP URL (required)")
	nBulk := fs.Int("bulk", 20000, "bulk messages in the burst")
	bulkConns := fs.Int("bulk-conns", 8, "sessions submitting the burst")
	bulkSizeS := fs.String("bulk-size", "10240", "bulk message size")
	probeSizeS := fs.String("probe-size", "2048", "transactional probe size")
	every := fs.Duration("probe-every", 10*time.Millisecond, "one probe this often")
	probeConns := fs.Int("probe-conns", 4, "sessions the probes use")
	idleProbes := fs.Int("idle-probes", 300, "probes on the idle system first (0: skip)")
	maxProbe := fs.Duration("max-probe", 4*time.Minute, "stop probing after this long even if bulk is still queued")
	wait := fs.Duration("wait", 5*time.Minute, "how long to wait for the sink")
	upDelay := fs.Duration("upstream-delay", 0, "make the sink delay each reply to DATA this long during the test (as Mailjet takes time)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sink == "" {
		return errors.New("--sink is required")
	}
	bulkSize, err := parseSize(*bulkSizeS)
	if err != nil {
		return err
	}
	probeSize, err := parseSize(*probeSizeS)
	if err != nil {
		return err
	}
	sc := sinkClient{*sink}
	for _, k := range []string{"probe-idle", "probe-burst", "bulk"} {
		if err := sc.reset(k); err != nil {
			return err
		}
	}
	if *upDelay > 0 {
		if err := sc.do("POST", "/delay?d="+upDelay.String(), nil); err != nil {
			return err
		}
		defer sc.do("POST", "/delay?d=0s", nil)
	}
	probeBody, bulkBody := msgBody(probeSize, "probe-burst", false), msgBody(bulkSize, "bulk", true)
	probe := func(kind string) makeMsg {
		return func(i int) ([]byte, []byte) { return msgHeader(kind, i, time.Now(), false), probeBody }
	}
	pcls, err := dialAll(*addr, *auth, *probeConns)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range pcls {
			c.close()
		}
	}()
	out := map[string]any{"bulk": *nBulk, "bulk_conns": *bulkConns, "probe_every_ms": every.Milliseconds(), "upstream_delay_ms": upDelay.Milliseconds()}

	// The idle system.
	if *idleProbes > 0 {
		var perr errCount
		lats, _, _ := openLoop(ctx, pcls, *every, *idleProbes, nil, probe("probe-idle"), &perr)
		if _, err := sc.waitArrived("probe-idle", len(lats), *wait); err != nil {
			return err
		}
		e2e, err := sc.latencies("probe-idle")
		if err != nil {
			return err
		}
		out["idle_p50_ms"], out["idle_p99_ms"] = round3(percentile(e2e, 50)), round3(percentile(e2e, 99))
	}

	// The burst.
	bcls, err := dialAll(*addr, *auth, *bulkConns)
	if err != nil {
		return err
	}
	var (
		berr      errCount
		bulkOK    atomic.Int64
		submitted atomic.Bool
		bulkTook  time.Duration
		wg        sync.WaitGroup
	)
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		lats := closedLoop(ctx, bcls, *nBulk, func(i int) ([]byte, []byte) {
			return msgHeader("bulk", i, time.Now(), true), bulkBody
		}, &berr)
		bulkTook = time.Since(start)
		bulkOK.Store(int64(len(lats)))
		submitted.Store(true)
		for _, c := range bcls {
			c.close()
		}
	}()
	var lastPoll time.Time
	drained := func() bool {
		if time.Since(start) > *maxProbe {
			return true
		}
		if !submitted.Load() || time.Since(lastPoll) < 100*time.Millisecond {
			return false
		}
		lastPoll = time.Now()
		k, err := sc.kind("bulk")
		return err == nil && int64(k.Count) >= bulkOK.Load()
	}
	var perr errCount
	plats, started, skipped := openLoop(ctx, pcls, *every, 0, drained, probe("probe-burst"), &perr)
	probing := time.Since(start)
	wg.Wait()
	bk, berrWait := sc.waitArrived("bulk", int(bulkOK.Load()), *wait)
	pk, perrWait := sc.waitArrived("probe-burst", len(plats), *wait)
	e2e, err := sc.latencies("probe-burst")
	if err != nil {
		return err
	}
	pms := durationsMS(plats)
	out["burst_p50_ms"], out["burst_p99_ms"] = round3(percentile(e2e, 50)), round3(percentile(e2e, 99))
	out["burst_max_ms"] = round3(percentile(e2e, 100))
	out["probe_accept_p99_ms"] = round3(percentile(pms, 99))
	out["probes_started"], out["probes_accepted"], out["probes_arrived"] = started, len(plats), pk.Count
	out["probes_skipped"], out["probe_errors"] = skipped, perr.n
	out["probing_seconds"] = round3(probing.Seconds())
	out["bulk_accepted"], out["bulk_errors"], out["bulk_arrived"] = bulkOK.Load(), berr.n, bk.Count
	out["bulk_accept_seconds"] = round3(bulkTook.Seconds())
	out["bulk_accept_msgs"] = round3(float64(bulkOK.Load()) / bulkTook.Seconds())
	if bk.Count > 0 {
		out["bulk_e2e_seconds"] = round3(time.Duration(bk.LastNS - start.UnixNano()).Seconds())
	}
	if berr.n > 0 {
		out["bulk_first_error"] = berr.first
	}
	if perr.n > 0 {
		out["probe_first_error"] = perr.first
	}
	emit(stdout, *asJSON, out)
	return errors.Join(berrWait, perrWait)
}
