package relay_test

import (
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay"
	"github.com/mjrelay/mjrelay/relay/config"
)

// bench10KB is a 10 KB message like an Odoo notification.
var bench10KB = func() string {
	var b strings.Builder
	b.WriteString("From: John <john@example.com>\r\nTo: client@example.org\r\nSubject: bench\r\nMessage-Id: <bench@odoo.test>\r\n\r\n")
	for b.Len() < 10240-78 {
		b.WriteString(strings.Repeat("x", 76) + "\r\n")
	}
	return b.String()
}()

// likeServe applies the GC settings that `mjrelay serve` uses, so that
// benchmarks measure the binary.
func likeServe(b *testing.B) {
	old := debug.SetGCPercent(relay.GCPercent)
	oldLimit := debug.SetMemoryLimit(relay.MemoryLimit)
	b.Cleanup(func() { debug.SetGCPercent(old); debug.SetMemoryLimit(oldLimit) })
}

// plainClient is an authenticated connection on the plain listener, as an
// Odoo on the same host uses it (encryption None: AUTH allowed on loopback).
func plainClient(b *testing.B, e *env) *smtp.Client { return plainClientAt(b, e.plainAddr()) }

// plainClientAt is plainClient on the listener at addr.
func plainClientAt(b *testing.B, addr string) *smtp.Client {
	c, err := smtp.Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", odooUser, odooPass)); err != nil {
		b.Fatal(err)
	}
	return c
}

// runClients sends n messages over conns parallel sessions; it returns how
// long that took.
func runClients(b *testing.B, e *env, conns, n int) time.Duration {
	return runClientsOn(b, []string{e.plainAddr()}, conns, n)
}

// runClientsOn is runClients with the sessions spread over the listeners
// at addrs (nodes of a cluster).
func runClientsOn(b *testing.B, addrs []string, conns, n int) time.Duration {
	clients := make([]*smtp.Client, conns)
	for i := range clients {
		clients[i] = plainClientAt(b, addrs[i%len(addrs)])
	}
	work := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if _, err := send(c, "bounce@example.com", []string{"client@example.org"}, bench10KB); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for _, c := range clients {
		c.Quit()
	}
	return took
}

// BenchmarkAccept: 10 KB messages over 32 sessions, each acknowledged only
// once fsynced. Sandbox transport, so delivery does no network work. The
// traffic store records every event; "bodies" also keeps every raw message
// for download (the default keep_bodies), "records" does not (keep_bodies = 0).
func BenchmarkAccept(b *testing.B) {
	for _, tc := range []struct {
		name   string
		bodies bool
	}{{"store=records+bodies", true}, {"store=records", false}} {
		b.Run(tc.name, func(b *testing.B) {
			likeServe(b)
			e := newEnv(b, mjtest.StartTLS, func(c *config.Config) {
				sandbox(c)
				if !tc.bodies {
					c.Store.KeepBodies = 0
				}
			})
			b.ResetTimer()
			took := runClients(b, e, 32, b.N)
			b.ReportMetric(float64(b.N)/took.Seconds(), "msg/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkAcceptLatency: one message every 10 ms (100 msg/s) spread over 4
// sessions; reports the time from MAIL to the 250 after DATA.
func BenchmarkAcceptLatency(b *testing.B) {
	likeServe(b)
	e := newEnv(b, mjtest.StartTLS, sandbox)
	acceptLatency(b, e.plainAddr())
}

// acceptLatency sends one message every 10 ms over 4 sessions on addr and
// reports the p50 and p99 from MAIL to the 250.
func acceptLatency(b *testing.B, addr string) {
	clients := make([]*smtp.Client, 4)
	for i := range clients {
		clients[i] = plainClientAt(b, addr)
	}
	lat := make([]time.Duration, b.N)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := clients[i%len(clients)]
			mu.Lock() // a session does one transaction at a time
			defer mu.Unlock()
			start := time.Now()
			if _, err := send(c, "bounce@example.com", []string{"client@example.org"}, bench10KB); err != nil {
				b.Error(err)
			}
			lat[i] = time.Since(start)
		}(i)
	}
	wg.Wait()
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRelay: end to end, 32 sessions in, delivered over STARTTLS with
// AUTH to a local go-smtp upstream (the emulator); msg/s counts until the
// last message is accepted upstream.
func BenchmarkRelay(b *testing.B) {
	likeServe(b)
	e := newEnv(b, mjtest.StartTLS, func(c *config.Config) { c.Routes.Transactional.Concurrency = 16 })
	b.ResetTimer()
	start := time.Now()
	runClients(b, e, 32, b.N)
	for e.up.Count() < b.N {
		select {
		case <-e.up.Arrivals():
		case <-time.After(30 * time.Second):
			b.Fatalf("only %d of %d delivered", e.up.Count(), b.N)
		}
	}
	took := time.Since(start)
	b.ReportMetric(float64(b.N)/took.Seconds(), "msg/s")
	b.ReportMetric(0, "ns/op")
}

// transactionalLatency sends n transactional messages, one every 10 ms, and
// returns the p50 and p99 of their end-to-end latency (received → accepted
// upstream).
func transactionalLatency(b *testing.B, e *env, n int) (p50, p99 time.Duration) {
	c := plainClient(b, e)
	defer c.Quit()
	e.lat.mu.Lock()
	start := len(e.lat.d)
	e.lat.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		if _, err := send(c, "bounce@example.com", []string{"user@example.org"}, testMessage(fmt.Sprintf("t%d", i))); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	deadline := time.Now().Add(60 * time.Second)
	for len(lat) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		lat = e.lat.since(start)
	}
	if len(lat) < n {
		b.Fatalf("only %d of %d transactional messages delivered", len(lat), n)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// BenchmarkTransactionalDuringBulk: the end-to-end latency of transactional
// mail while 20,000 mass-mailing messages are submitted and queued, against
// the same on an idle relay. The upstream takes 2 ms per message; bulk has 2
// upstream connections, transactional 8. The burst comes through one SMTP
// session (as Odoo's mass-mailing cron sends it) or through 8 sessions flat
// out (which saturates both cores with intake). Run with -benchtime 1x.
func BenchmarkTransactionalDuringBulk(b *testing.B) {
	likeServe(b)
	for _, sessions := range []int{1, 8} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			e := newEnv(b, mjtest.StartTLS, func(c *config.Config) {
				c.Routes.Bulk.Concurrency, c.Routes.Transactional.Concurrency = 2, 8
			})
			e.up.SetDataDelay(2 * time.Millisecond)
			const probes = 500
			idle50, idle99 := transactionalLatency(b, e, probes)

			const burst = 20000
			var wg sync.WaitGroup
			work := make(chan int, burst)
			for i := 0; i < burst; i++ {
				work <- i
			}
			close(work)
			for s := 0; s < sessions; s++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := plainClient(b, e)
					defer c.Quit()
					for i := range work {
						if _, err := send(c, "bounce@example.com", []string{"c@example.org"}, massMailing(i)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			time.Sleep(200 * time.Millisecond) // the backlog builds up
			burst50, burst99 := transactionalLatency(b, e, probes)
			backlog := e.r.Sched().Depths()["bulk"]
			wg.Wait()
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(idle50), "idle-p50-ms")
			b.ReportMetric(ms(idle99), "idle-p99-ms")
			b.ReportMetric(ms(burst50), "burst-p50-ms")
			b.ReportMetric(ms(burst99), "burst-p99-ms")
			b.ReportMetric(float64(burst99)/float64(idle99), "p99-ratio")
			b.ReportMetric(float64(backlog.Ready+backlog.Deferred), "bulk-backlog")
			b.ReportMetric(0, "ns/op")
		})
	}
}
