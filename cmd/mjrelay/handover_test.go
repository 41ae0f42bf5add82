package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/notify"
	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
	"github.com/mjrelay/mjrelay/relay/store"
)

// TestRestartUnderOdooLoad: Odoo-style senders (4 threads, a new
// connection per batch of 10) send while the relay is restarted with
// SIGUSR2 five times, twice after its binary was replaced by a newly built
// one. No connection is refused, no command gets anything but what it
// would get anyway, every acknowledged mail reaches Mailjet, and copies
// beyond one come only from deliveries a handover cut short (counted).
// The service manager (systemd's NOTIFY_SOCKET, here the test's) learns
// each new main PID, ready, after a RELOADING=1 from the former one.
func TestRestartUnderOdooLoad(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "mjrelay")
	copyExecutable(t, binary, bin)
	upgrades := map[int]string{1: buildVersion(t, dir, "v9.0.1-upgrade"), 3: buildVersion(t, dir, "v9.0.2-upgrade")}
	nl, err := notify.Listen(filepath.Join(dir, "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()

	p := startRelay(t, bin, []string{"serve", "--config", w.cfgPath}, []string{notify.Env + "=" + nl.Addr()}, nl)
	load := startOdooLoad(t, p.addr("SMTP listening"), "odoo", odooPass, "restart")
	pids := []int{p.main()}
	for i := 0; i < 5; i++ {
		load.waitMore(p, 40)
		if v, ok := upgrades[i]; ok {
			copyExecutable(t, v, bin)
		}
		pid := p.restart(0)
		pids = append(pids, pid)
		if v, ok := upgrades[i]; ok {
			if got := startVersion(p, pid); !strings.Contains(v, got) {
				t.Errorf("restart %d after the binary was replaced: the new process is version %q, want %s", i+1, got, filepath.Base(v))
			}
		}
	}
	load.waitMore(p, 40)
	res := load.stop()
	acked := res.check(t)
	dups := waitAllDelivered(t, w, acked)
	cut := p.cutShort()
	// How long the queue was in no process's hands (messages waited).
	var gaps []time.Duration
	released, opened := p.find("queue handed over: the messages accepted here are stored by the new process"), p.find("mjrelay ready")[1:]
	for i := range min(len(released), len(opened)) {
		gaps = append(gaps, opened[i].Time.Sub(released[i].Time).Round(time.Millisecond))
	}
	t.Logf("%d mails acknowledged in %d batches across 5 restarts (2 upgrades), 0 refused connections, all delivered; "+
		"%d deliveries cut short by the handovers, %d duplicates; from queue released to new process ready: %v",
		len(res.Acked), res.Batches, cut, dups, gaps)
	if dups > cut {
		t.Errorf("%d duplicates, more than the %d deliveries the handovers cut short", dups, cut)
	}
	if u := slices.Compact(slices.Clone(pids)); len(u) != 6 {
		t.Errorf("processes %v: want 6 different ones", pids)
	}

	// The traffic store, written by two processes at each handover, has
	// every message, sent.
	waitUntil(t, "every acknowledged mail recorded as sent", 30*time.Second, func() bool {
		states := storedStates(t, filepath.Join(w.dir, "data"))
		for tok := range acked {
			if states[tok] != store.StateSent {
				return false
			}
		}
		return true
	})

	// Nothing went wrong in any process (a store busy with the other
	// process's writes, a lost socket…).
	for _, l := range p.linesAt("ERROR", "WARN") {
		if !strings.Contains(l.Msg, "SANDBOX") {
			t.Errorf("logged: %s", l.raw)
		}
	}

	// The service manager saw each process become the main one, in order,
	// each after the former one said it was reloading.
	p.mu.Lock()
	notes := slices.Clone(p.notes)
	p.mu.Unlock()
	var mains []int
	reloading := 0
	for _, m := range notes {
		if m["RELOADING"] == "1" {
			reloading++
		}
		if m["READY"] == "1" && m["MAINPID"] != "" {
			pid, _ := strconv.Atoi(m["MAINPID"])
			if len(mains) > 0 && reloading != len(mains) {
				t.Errorf("MAINPID=%d READY=1 after %d RELOADING=1, want %d", pid, reloading, len(mains))
			}
			mains = append(mains, pid)
		}
	}
	if !slices.Equal(mains, pids) {
		t.Errorf("the service manager was told the main PIDs %v, want %v", mains, pids)
	}

	// The last process serves /readyz.
	resp, err := http.Get("http://" + p.addr("HTTP listening") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after the restarts: %d %s", resp.StatusCode, body)
	}
}

// storedStates reads the traffic store: each message's state by subject.
func storedStates(t *testing.T, dataDir string) map[string]store.State {
	out := map[string]store.State{}
	for subj, m := range storedMessages(t, dataDir) {
		out[subj] = m.State
	}
	return out
}

// storedMessages reads the traffic store: each message by subject.
func storedMessages(t *testing.T, dataDir string) map[string]store.Summary {
	t.Helper()
	st, err := inspect.Open(inspect.Path(dataDir), inspect.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[string]store.Summary{}
	f := store.Filter{Limit: 1000}
	for {
		p, err := st.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			out[m.Subject] = m
		}
		if p.Next == "" {
			return out
		}
		f.Cursor = p.Next
	}
}

// startVersion is the version process pid logged at its start.
func startVersion(p *relayProcs, pid int) string {
	for _, l := range p.find("mjrelay starting") {
		if l.PID == pid {
			return l.Version
		}
	}
	return ""
}

// TestRestartThatFails: a restart whose new process cannot start (its
// configuration is now invalid), or fails after it took the queue (its new
// TLS listener's address is taken), leaves the running relay serving; in
// the second case it takes its queue back. Odoo-style senders see no
// refused connection and no unexpected reply, every acknowledged mail is
// delivered once, `mjrelay restart` says why it failed, and a later
// restart works.
func TestRestartThatFails(t *testing.T) {
	w := newWorld(t)
	p := startRelay(t, binary, []string{"serve", "--config", w.cfgPath}, nil, nil)
	first := p.main()
	load := startOdooLoad(t, p.addr("SMTP listening"), "odoo", odooPass, "failing")
	load.waitMore(p, 30)

	// The new process exits at its start: nothing changed hands.
	editConfig(t, w.cfgPath, "[queue]\n", "[queue]\nmax_lifetime = \"-1s\"\n")
	p.signal(first, syscall.SIGUSR2)
	p.waitFor("the failed restart", time.Minute, func() bool { return len(p.find("restart failed: this process goes on")) == 1 })
	editConfig(t, w.cfgPath, "[queue]\nmax_lifetime = \"-1s\"\n", "[queue]\n")
	load.waitMore(p, 30)

	// The new process fails once it has the queue.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	editConfig(t, w.cfgPath, "[smtp]\n", "[smtp]\nlisten_tls = \""+busy.Addr().String()+"\"\n")
	out, err := exec.Command(binary, "restart", "--config", w.cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "restart failed") {
		t.Errorf("mjrelay restart of a process that fails: %v\n%s", err, out)
	}
	p.waitFor("the queue to come back", time.Minute, func() bool {
		return len(p.find("the new process failed after it took the queue: this process takes it back")) == 1
	})
	if p.main() != first || exited(first) {
		t.Fatalf("the relay process changed: %v", p.readyPIDs())
	}
	load.waitMore(p, 30)
	resp, err := http.Get("http://" + p.addr("HTTP listening") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after the queue came back: %d", resp.StatusCode)
	}

	// Fixed, the restart works.
	editConfig(t, w.cfgPath, "[smtp]\nlisten_tls = \""+busy.Addr().String()+"\"\n", "[smtp]\n")
	p.restart(0)
	load.waitMore(p, 30)
	acked := load.stop().check(t)
	cut := p.cutShort()
	dups := waitAllDelivered(t, w, acked)
	t.Logf("%d mails acknowledged across 2 failed restarts and 1 good one; %d cut short, %d duplicates", len(acked), cut, dups)
	if dups > cut {
		t.Errorf("%d duplicates, more than the %d deliveries cut short", dups, cut)
	}
}

// TestRestartWithOdooFeedback: with [odoo], the feedback's outbox goes
// with the queue. A bounce taken while Odoo is down is reported, once, by
// the process that took over; its webhook takes Mailjet's events.
func TestRestartWithOdooFeedback(t *testing.T) {
	od := odootest.Start("prod", "relay", odooAPIKey)
	defer od.Close()
	old, repl := withOdoo(od)
	w := newWorld(t, old, repl)
	p := startRelay(t, binary, []string{"serve", "--config", w.cfgPath}, nil, nil)
	addr, web := p.addr("SMTP listening"), p.addr("HTTP listening")
	const msgID = "<restart.1700000000.1-openerp-3-res.partner@odoo.test>"
	od.AddMessage(msgID)
	id := sendOdooMail(t, addr, "gone@example.org", msgID)
	waitUntil(t, "delivery", 20*time.Second, func() bool { return len(w.up.Received()) == 1 })
	od.SetDown(true)
	if code := postEvents(t, web, hardBounce(id, "gone@example.org")); code != http.StatusOK {
		t.Fatalf("webhook answered %d", code)
	}
	p.restart(0)
	od.SetDown(false)
	waitUntil(t, "the bounce in Odoo", 60*time.Second, func() bool { return len(od.Bounces()) == 1 })
	id2 := sendOdooMail(t, addr, "angry@example.org", "<restart2@odoo.test>")
	spam := map[string]any{"event": "spam", "time": time.Now().Unix(), "MessageID": 13792286917004337, "email": "angry@example.org",
		"CustomID": id2, "source": "JMRPP"}
	if code := postEvents(t, web, spam); code != http.StatusOK {
		t.Fatalf("webhook of the new process answered %d", code)
	}
	waitUntil(t, "the blacklisting in Odoo", 60*time.Second, func() bool { return len(od.Blacklisted()) == 1 })
	if b := od.Bounces(); len(b) != 1 || b[0].Original != msgID {
		t.Errorf("bounces %+v", b)
	}
}

// TestSessionAcrossRestart: a session open when the relay restarts (an
// Odoo batch on one connection) goes on in the former process: the mails
// it sends after the handover are stored by the new process, acknowledged
// and delivered. The former process exits once that session ends; a
// restart asked meanwhile waits for it, then happens.
func TestSessionAcrossRestart(t *testing.T) {
	w := newWorld(t)
	p := startRelay(t, binary, []string{"serve", "--config", w.cfgPath}, nil, nil)
	first := p.main()
	c := dial(t, p.addr("SMTP listening"))
	acked := map[string]bool{}
	send := func(tok string) {
		t.Helper()
		if err := sendToken(c, tok); err != nil {
			t.Fatalf("%s: %v", tok, err)
		}
		acked[tok] = true
	}
	send("across-0")
	n := len(p.readyPIDs())
	p.signal(first, syscall.SIGUSR2)
	p.waitFor("the new process", time.Minute, func() bool { return len(p.readyPIDs()) > n })
	second := p.main()
	for i := 1; i <= 5; i++ {
		send(fmt.Sprintf("across-%d", i))
	}
	if exited(first) {
		t.Fatal("the former process exited with a session open")
	}
	// A restart now waits for the former process to be gone.
	restarted := make(chan string, 1)
	go func() {
		out, _ := exec.Command(binary, "restart", "--config", w.cfgPath).CombinedOutput()
		restarted <- string(out)
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case out := <-restarted:
		t.Fatalf("restart while the former process still has a session: %s", out)
	default:
	}
	send("across-6")
	c.Quit()
	p.waitFor("the former process to exit", time.Minute, func() bool { return exited(first) })
	select {
	case out := <-restarted:
		if !strings.Contains(out, "restarted") {
			t.Errorf("mjrelay restart: %s", out)
		}
	case <-time.After(time.Minute):
		t.Fatal("the restart did not happen once the former process exited")
	}
	// Its ready line may be read from its log a moment after the restart
	// command returned.
	p.waitFor("the restarted process", time.Minute, func() bool { m := p.main(); return m != second && !exited(m) })
	if dups := waitAllDelivered(t, w, acked); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
}

// TestRestartCutsLongDeliveriesShort: deliveries still in flight when the
// relay hands over (Mailjet holds the end of DATA longer than the
// handover's grace) are cut short and counted; the new process sends them
// again, and the copies beyond one that reach Mailjet are those, and only
// those.
func TestRestartCutsLongDeliveriesShort(t *testing.T) {
	w := newWorld(t, `timeout = "5s"`, `timeout = "60s"`)
	p := startRelay(t, binary, []string{"serve", "--config", w.cfgPath}, nil, nil)
	w.up.SetDataDelay(8 * time.Second)
	c := dial(t, p.addr("SMTP listening"))
	acked := map[string]bool{}
	for _, tok := range []string{"inflight-1", "inflight-2"} {
		if err := sendToken(c, tok); err != nil {
			t.Fatal(err)
		}
		acked[tok] = true
	}
	c.Quit()
	waitUntil(t, "both deliveries in progress", 10*time.Second, func() bool { return w.up.Connections() >= 2 })
	time.Sleep(300 * time.Millisecond) // they reach the end of DATA
	p.signal(p.main(), syscall.SIGUSR2)
	p.waitFor("the handover", time.Minute, func() bool { return p.cutShort() > 0 })
	w.up.SetDataDelay(0)
	cut := p.cutShort()
	waitAllDelivered(t, w, acked)
	waitUntil(t, "the cut deliveries to end at Mailjet", 30*time.Second, func() bool { return len(w.up.Received()) >= len(acked)+cut })
	dups := len(w.up.Received()) - len(acked)
	t.Logf("%d deliveries cut short by the handover, %d duplicates", cut, dups)
	if cut != 2 || dups != cut {
		t.Errorf("%d deliveries cut short, %d duplicates; want 2 and 2", cut, dups)
	}
}
