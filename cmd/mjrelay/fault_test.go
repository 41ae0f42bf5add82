package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/spool/spooltest"
)

// load sends from 8 parallel sessions until stop is closed or the relay
// goes away; it returns the acknowledged tokens.
func load(t *testing.T, addr, prefix string, stop <-chan struct{}) map[string]bool {
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for s := 0; s < 8; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, addr)
			defer c.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := fmt.Sprintf("%s-s%d-m%d", prefix, s, i)
				if err := sendToken(c, tok); err != nil {
					return
				}
				mu.Lock()
				acked[tok] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked
}

// TestKill9ThreeTimesWithUpstreamUp: while the upstream accepts, messages
// can be in flight at the kill (delivered upstream, not yet marked done):
// those may arrive twice, and only those.
func TestKill9ThreeTimesWithUpstreamUp(t *testing.T) {
	w := newWorld(t)
	all := map[string]bool{}
	for round := 0; round < 3; round++ {
		p := w.serve()
		stop := make(chan struct{})
		go func() { time.Sleep(600 * time.Millisecond); p.kill9(); close(stop) }()
		for tok := range load(t, p.addr, fmt.Sprintf("k%d", round), stop) {
			all[tok] = true
		}
	}
	w.serve()
	dups := waitAllDelivered(t, w, all)
	// In flight at a kill: at most one per upstream connection (concurrency 8+2) per kill.
	t.Logf("%d acknowledged messages, 3 kills, all delivered; %d duplicates (in flight at a kill)", len(all), dups)
	if dups > 3*10 {
		t.Errorf("%d duplicates: more than the deliveries that can be in flight at 3 kills", dups)
	}
}

// TestUpstreamHangsThenRecovers: Mailjet stops answering at the end of
// DATA for longer than the relay's timeout; clients keep getting 250,
// and everything goes out once it answers again.
func TestUpstreamHangsThenRecovers(t *testing.T) {
	w := newWorld(t, `timeout = "5s"`, `timeout = "1s"`)
	w.up.SetDataDelay(time.Hour)
	p := w.serve()
	stop := make(chan struct{})
	go func() { time.Sleep(500 * time.Millisecond); close(stop) }()
	acked := load(t, p.addr, "hang", stop)
	if len(acked) == 0 {
		t.Fatal("no message acknowledged while the upstream hangs")
	}
	time.Sleep(2 * time.Second) // attempts time out and are deferred
	w.up.SetDataDelay(0)
	waitAllDelivered(t, w, acked)
}

// TestQueueLimit: over queue.max_messages new mail gets 452 4.3.1, and
// exactly what got a 250 is delivered.
func TestQueueLimit(t *testing.T) {
	w := newWorld(t, `[queue]`, "[queue]\nmax_messages = 30")
	w.up.SetMailFault(mjtest.Fault{Code: 451, Enh: smtp.EnhancedCode{4, 3, 0}, Message: "later"})
	p := w.serve()
	c := dial(t, p.addr)
	acked := map[string]bool{}
	full := 0
	for i := 0; i < 40; i++ {
		tok := fmt.Sprintf("limit-%d", i)
		err := sendToken(c, tok)
		if se, ok := err.(*smtp.SMTPError); ok && se.Code == 452 && se.EnhancedCode == (smtp.EnhancedCode{4, 3, 1}) {
			full++
			c.Reset()
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		acked[tok] = true
	}
	c.Quit()
	if len(acked) != 30 || full != 10 {
		t.Fatalf("%d acknowledged, %d refused with 452 4.3.1; want 30 and 10", len(acked), full)
	}
	w.up.SetMailFault(mjtest.Fault{})
	waitUntil(t, "30 messages upstream", 30*time.Second, func() bool { return len(w.up.Received()) >= 30 })
	got := tokensAt(w.up)
	if len(got) != 30 {
		t.Errorf("%d distinct messages upstream, want 30", len(got))
	}
	for tok := range got {
		if !acked[tok] {
			t.Errorf("%s went upstream without a 250", tok)
		}
	}
}

// TestDamagedQueueFileIsQuarantined: a queue segment damaged while the
// relay is down is copied to quarantine/ and reported; every readable
// message is still delivered.
func TestDamagedQueueFileIsQuarantined(t *testing.T) {
	w := newWorld(t)
	w.up.SetMailFault(mjtest.Fault{Code: 451, Enh: smtp.EnhancedCode{4, 3, 0}, Message: "later"})
	p := w.serve()
	c := dial(t, p.addr)
	for i := 0; i < 10; i++ {
		if err := sendToken(c, fmt.Sprintf("dmg-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	p.kill9()
	segs, _ := filepath.Glob(filepath.Join(w.dir, "data", "queue", "seg-*.log"))
	if len(segs) == 0 {
		t.Fatal("no queue segment")
	}
	data, _ := os.ReadFile(segs[0])
	i := strings.Index(string(data), "Subject: dmg-4")
	data[i+20] ^= 0xff // inside message 4
	os.WriteFile(segs[0], data, 0o600)

	w.up.SetMailFault(mjtest.Fault{})
	p = w.serve()
	waitUntil(t, "9 intact messages upstream", 30*time.Second, func() bool { return len(tokensAt(w.up)) >= 9 })
	got := tokensAt(w.up)
	if got["dmg-4"] != 0 || len(got) != 9 {
		t.Errorf("upstream got %v", got)
	}
	if !strings.Contains(p.log(), "damaged queue data quarantined") {
		t.Errorf("no report of the damage in the log:\n%s", p.log())
	}
	if q, _ := filepath.Glob(filepath.Join(w.dir, "data", "queue", "quarantine", "*")); len(q) != 1 {
		t.Errorf("quarantine holds %v", q)
	}
}

// TestFullDiskDeliveredMailIsNotSentAgain: mail queued while Mailjet
// refuses, then delivered while the disk is full, is marked done all the
// same: a restart does not send it again. While the disk is full new mail
// gets 452 4.3.1.
func TestFullDiskDeliveredMailIsNotSentAgain(t *testing.T) {
	w := newWorld(t, "[queue]", "[queue]\nmin_free_bytes = 1048576")
	data := filepath.Join(w.dir, "data")
	spooltest.MountSmallDisk(t, data, 48<<20)
	w.up.SetMailFault(mjtest.Fault{Code: 451, Enh: smtp.EnhancedCode{4, 3, 0}, Message: "later"})
	p := w.serve()
	c := dial(t, p.addr)
	acked := map[string]bool{}
	for i := 0; i < 20; i++ {
		tok := fmt.Sprintf("full-%d", i)
		if err := sendToken(c, tok); err != nil {
			t.Fatal(err)
		}
		acked[tok] = true
	}
	filler := spooltest.Fill(t, data)
	// The relay reads the free space afresh when its last reading is
	// over 20 ms old; the first message after that is refused.
	time.Sleep(100 * time.Millisecond)
	err := sendToken(c, "full-refused")
	if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Errorf("mail on a full disk: %v, want 452 4.3.1", err)
	}
	c.Close()
	w.up.SetMailFault(mjtest.Fault{})
	if dups := waitAllDelivered(t, w, acked); dups != 0 {
		t.Fatalf("%d duplicates before any restart", dups)
	}
	time.Sleep(500 * time.Millisecond) // completions are synced within 100 ms
	p.kill9()
	os.Remove(filler)
	w.serve()
	time.Sleep(3 * time.Second) // a re-sent message would go out at once
	for tok, n := range tokensAt(w.up) {
		if n != 1 {
			t.Errorf("%s arrived %d times", tok, n)
		}
	}
}
