package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
)

// TestKill9LosesNothingAcknowledged kills the relay with SIGKILL while
// parallel sessions send and the upstream refuses everything, twice, then
// restarts it with the upstream back: every message that got a 250 arrives,
// exactly once (nothing was in flight upstream at the kills).
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	w := newWorld(t)
	w.up.SetMailFault(mjtest.Fault{Code: 421, Enh: smtp.EnhancedCode{4, 3, 2}, Message: "maintenance"})
	acked := map[string]bool{}
	for round := 0; round < 2; round++ {
		p := w.serve()
		stop := make(chan struct{})
		go func() { time.Sleep(700 * time.Millisecond); p.kill9(); close(stop) }()
		for tok := range load(t, p.addr, fmt.Sprintf("r%d", round), stop) {
			acked[tok] = true
		}
	}
	if len(acked) < 100 {
		t.Fatalf("only %d messages acknowledged before the kills; the test proves little", len(acked))
	}
	w.up.SetMailFault(mjtest.Fault{})
	w.serve()
	dups := waitAllDelivered(t, w, acked)
	t.Logf("%d acknowledged messages delivered after 2 kills; %d duplicates", len(acked), dups)
	if dups != 0 {
		t.Errorf("%d duplicates although the upstream accepted nothing before the kills", dups)
	}
}

// TestPreseededQueueIsDelivered writes a queue with the spool package,
// then starts the binary on it.
func TestPreseededQueueIsDelivered(t *testing.T) {
	w := newWorld(t)
	sp, err := spool.Open(w.dir+"/data/queue", spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		env := &queue.Envelope{ID: sp.NewID(), Received: time.Now(), From: "bounce@example.com", To: []string{"client@example.org"}}
		body := fmt.Sprintf("From: john@example.com\r\nSubject: seeded-%d\r\n\r\nhi\r\n", i)
		if err := sp.Put(context.Background(), env, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	sp.Close()
	w.serve()
	waitUntil(t, "3 seeded messages upstream", 20*time.Second, func() bool { return len(w.up.Received()) == 3 })
}

func TestSIGTERMLetsTheSessionFinish(t *testing.T) {
	w := newWorld(t)
	p := w.serve()
	c := dial(t, p.addr)
	if err := c.Mail("bounce@example.com", nil); err != nil {
		t.Fatal(err)
	}
	c.Rcpt("client@example.org", nil)
	p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	// New connections are refused; the open session completes its message.
	if _, err := smtp.Dial(p.addr); err == nil {
		t.Errorf("a new connection was accepted after SIGTERM")
	}
	wc, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(wc, "From: john@example.com\r\nSubject: during-shutdown\r\n\r\nhi\r\n")
	if err := wc.Close(); err != nil {
		t.Fatalf("message during shutdown: %v", err)
	}
	c.Quit()
	select {
	case <-p.exited:
	case <-time.After(40 * time.Second):
		t.Fatal("mjrelay did not exit after SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d\n%s", code, p.log())
	}
	if !strings.Contains(p.log(), `"grace":"30s"`) {
		t.Errorf("the shutdown line does not give the grace period as \"30s\":\n%s", p.log())
	}
	// Whether delivered before the exit or kept for the next start, it is not lost.
	if len(w.up.Received()) == 0 {
		w.serve()
		waitUntil(t, "the message upstream", 20*time.Second, func() bool { return len(w.up.Received()) == 1 })
	}
}

func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

func TestQueueCommandOnlineAndOffline(t *testing.T) {
	// One attempt each while the test looks: with the default test
	// retry_min of 100 ms, retries and the transport's cool-down keep
	// replacing the messages' last error.
	w := newWorld(t, `retry_min = "100ms"`, `retry_min = "1m"`, `retry_max = "300ms"`, `retry_max = "2m"`)
	w.up.SetMailFault(mjtest.Fault{Code: 451, Enh: smtp.EnhancedCode{4, 3, 0}, Message: "later"})
	p := w.serve()
	c := dial(t, p.addr)
	for i := 0; i < 3; i++ {
		if err := sendToken(c, fmt.Sprintf("q%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	// The first attempts run while the client quits: list until all three
	// show the upstream's 451.
	var out string
	waitUntil(t, "three deferred messages in the queue list", 10*time.Second, func() bool {
		var code int
		out, code = runCLI(t, "queue", "--config", w.cfgPath, "list")
		return code == 0 && strings.Count(out, "bounce@example.com") == 3 && strings.Count(out, "451 4.3.0 later") == 3
	})
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if out, code := runCLI(t, "queue", "--config", w.cfgPath, "delete", id); code != 0 {
		t.Fatalf("queue delete: %s", out)
	}
	if out, code := runCLI(t, "queue", "--config", w.cfgPath, "delete", "nosuchid"); code == 0 || !strings.Contains(out, "no such message") {
		t.Fatalf("deleting an unknown id: exit %d, %s", code, out)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	out, code := runCLI(t, "queue", "--config", w.cfgPath, "list")
	if code != 0 || strings.Count(out, "bounce@example.com") != 2 || strings.Contains(out, id) {
		t.Fatalf("queue list (offline) exit %d:\n%s", code, out)
	}
	// A delete while no server runs is recorded as the server would.
	id2 := strings.Fields(strings.Split(out, "\n")[1])[0]
	if out, code := runCLI(t, "queue", "--config", w.cfgPath, "delete", id2); code != 0 {
		t.Fatalf("queue delete (offline): %s", out)
	}
	if out, code := runCLI(t, "queue", "--config", w.cfgPath, "retry", "--all"); code != 0 || !strings.Contains(out, "1 message(s)") {
		t.Fatalf("queue retry --all: %s", out)
	}
	w.up.SetMailFault(mjtest.Fault{})
	p = w.serve()
	waitUntil(t, "1 message upstream", 20*time.Second, func() bool { return len(w.up.Received()) == 1 })
	web := p.web(t)
	for _, deleted := range []string{id, id2} {
		var m struct{ State, Subject string }
		getJSON(t, "http://"+web+"/api/messages/"+deleted, &m)
		if m.State != "deleted" || m.Subject == "" {
			t.Errorf("message %s in the store: %+v, want state deleted", deleted, m)
		}
		if tokensAt(w.up)[m.Subject] != 0 {
			t.Errorf("deleted message %s (%s) was delivered", deleted, m.Subject)
		}
	}
}

func TestHashPassword(t *testing.T) {
	cmd := exec.Command(binary, "hash-password")
	cmd.Stdin = strings.NewReader("pa55word\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if h := lines[len(lines)-1]; !strings.HasPrefix(h, "$2a$10$") || strings.Contains(string(out), "pa55word") {
		t.Fatalf("output %q", out)
	}
}
