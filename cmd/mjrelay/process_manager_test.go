package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/notify"
	"github.com/mjrelay/mjrelay/relay/pid1"
)

// TestSocketActivation: systemd's socket activation, as
// systemd-socket-activate does it (Debian's systemd package): the socket
// listens before the relay runs, the first connection starts it, and that
// connection is served, not refused. The socket is then handed on by a
// restart like any other.
func TestSocketActivation(t *testing.T) {
	sa := needCommand(t, "systemd-socket-activate")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	w := newWorld(t, "[smtp]\nlisten = \"127.0.0.1:0\"", "[smtp]\nlisten = \""+addr+"\"")
	nl, err := notify.Listen(t.TempDir() + "/notify.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	cmd := exec.Command(sa, "--listen="+addr, "--fdname=smtp", "--setenv="+notify.Env+"="+nl.Addr(), binary, "serve", "--config", w.cfgPath)
	p := spawnRelay(t, cmd, nil, nl)
	p.waitFor("systemd-socket-activate to listen", 30*time.Second, func() bool { return strings.Contains(p.log(), "Listening on") })
	if len(p.readyPIDs()) != 0 {
		t.Fatal("the relay started before a connection came")
	}

	// The first connection starts the relay, which answers it.
	c := dial(t, addr)
	if err := sendToken(c, "activated-1"); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if p.main() != cmd.Process.Pid {
		t.Errorf("the relay is pid %d, systemd-socket-activate was %d", p.main(), cmd.Process.Pid)
	}
	if ls := p.find("listener from systemd socket activation"); len(ls) != 1 || ls[0].Addr != addr {
		t.Errorf("the relay does not say it took systemd's socket:\n%s", p.log())
	}

	// A restart hands the socket on.
	p.restart(0)
	c = dial(t, addr)
	if err := sendToken(c, "activated-2"); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	waitAllDelivered(t, w, map[string]bool{"activated-1": true, "activated-2": true})
	p.signal(p.main(), syscall.SIGTERM)
	p.waitFor("the relay to stop", 30*time.Second, func() bool { return exited(p.main()) })
}

// TestInitAsPID1: as the first process of a container (here: asked with
// MJRELAY_INIT=1), `mjrelay serve` is an init that runs the relay as its
// child and stays up across restarts: SIGUSR2 and SIGHUP sent to it reach
// the relay's current main process, mail flows throughout, and SIGTERM
// stops every relay process; the init reaps them all and exits 0 once none
// is left.
func TestInitAsPID1(t *testing.T) {
	w := newWorld(t)
	cmd := exec.Command(binary, "serve", "--config", w.cfgPath)
	p := spawnRelay(t, cmd, []string{"MJRELAY_INIT=1"}, nil)
	p.waitFor("the relay to be ready", 30*time.Second, func() bool { return len(p.readyPIDs()) > 0 })
	initPID := cmd.Process.Pid
	if p.main() == initPID {
		t.Fatal("the init serves instead of running the relay as its child")
	}
	load := startOdooLoad(t, p.addr("SMTP listening"), "odoo", odooPass, "init")
	for i := 0; i < 2; i++ {
		load.waitMore(p, 30)
		p.restart(initPID) // the init forwards SIGUSR2 to the main process
		if exited(initPID) {
			t.Fatal("the init exited with the relay process it started")
		}
	}
	editConfig(t, w.cfgPath, "[queue]\n", "[routes.bulk]\nrate = 20.0\n[queue]\n")
	p.signal(initPID, syscall.SIGHUP)
	p.waitFor("the reload", 30*time.Second, func() bool { return len(p.find("configuration reloaded")) == 1 })
	load.waitMore(p, 30)
	acked := load.stop().check(t)
	dups := waitAllDelivered(t, w, acked)
	t.Logf("%d mails acknowledged across 2 restarts under the init; %d duplicates", len(acked), dups)

	p.signal(initPID, syscall.SIGTERM)
	select {
	case <-p.firstDone:
	case <-time.After(60 * time.Second):
		t.Fatalf("the init did not exit after SIGTERM:\n%s", p.log())
	}
	if p.firstErr != nil {
		t.Errorf("the init exited with %v", p.firstErr)
	}
	for _, pid := range p.pids() {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("relay process %d is left (running or not reaped) after the init exited", pid)
		}
	}
}

// TestInitIsPID1: as a container's first process (PID 1 of a new PID
// namespace, as Docker runs it; no MJRELAY_INIT), `mjrelay serve` is the
// init by itself: the relay runs as its child, SIGUSR2 sent to PID 1
// restarts the relay in place (mail before and after is delivered), and
// SIGTERM ends it all with status 0. The orphans of a restart come to PID
// 1 here, not to a subreaper.
func TestInitIsPID1(t *testing.T) {
	us := needCommand(t, "unshare")
	if err := exec.Command(us, "--pid", "--fork", "--kill-child", "--mount-proc", "true").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("unshare --pid: %v (CI runs the tests as root)", err)
		}
		t.Skipf("cannot make a PID namespace: %v", err)
	}
	w := newWorld(t)
	cmd := exec.Command(us, "--pid", "--fork", "--kill-child", "--mount-proc", binary, "serve", "--config", w.cfgPath)
	p := spawnRelay(t, cmd, []string{pid1.Env + "="}, nil)
	p.foreign = true
	p.waitFor("the relay to be ready", 30*time.Second, func() bool { return len(p.readyPIDs()) == 1 })
	if started := p.find("init: started the relay"); len(started) != 1 || started[0].PID != p.main() || p.main() == 1 {
		t.Fatalf("PID 1 is not the init running the relay as its child:\n%s", p.log())
	}
	// PID 1 of the namespace, seen from here: unshare's only child.
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	initPID, err := strconv.Atoi(strings.TrimSpace(string(children)))
	if err != nil {
		t.Fatalf("unshare's children: %q", children)
	}
	addr := p.addr("SMTP listening")
	send := func(tok string) {
		t.Helper()
		c := dial(t, addr)
		defer c.Quit()
		if err := sendToken(c, tok); err != nil {
			t.Fatalf("%s: %v", tok, err)
		}
	}
	send("pid1-before")
	p.signal(initPID, syscall.SIGUSR2)
	p.waitFor("the new relay process", time.Minute, func() bool { return len(p.readyPIDs()) == 2 })
	send("pid1-after")
	if dups := waitAllDelivered(t, w, map[string]bool{"pid1-before": true, "pid1-after": true}); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	p.signal(initPID, syscall.SIGTERM)
	select {
	case <-p.firstDone:
	case <-time.After(time.Minute):
		t.Fatalf("PID 1 did not exit after SIGTERM:\n%s", p.log())
	}
	if p.firstErr != nil {
		t.Errorf("PID 1 (through unshare) exited with %v:\n%s", p.firstErr, p.log())
	}
	if n := len(p.find("init: no process left; exiting")); n != 1 {
		t.Errorf("the init did not see every relay process end:\n%s", p.log())
	}
}
