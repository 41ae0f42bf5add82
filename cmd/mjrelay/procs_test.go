package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/notify"
)

// relayProcs is a relay started with `mjrelay serve` and the processes it
// becomes through restarts: they all write to one stderr pipe (a restart's
// new process inherits it), which this reads and parses; with a notify
// listener of the test's as NOTIFY_SOCKET, it also keeps what the
// processes told the "service manager".
type relayProcs struct {
	t         *testing.T
	first     *exec.Cmd
	firstDone chan struct{}
	firstErr  error

	// foreign: the processes' PIDs are of another PID namespace (only
	// the first process, this one's child, is killed at the end).
	foreign bool

	mu    sync.Mutex
	lines []logLine
	notes []notify.Message
	eof   bool
}

// logLine is one line of the process log, with the fields tests use.
type logLine struct {
	Time     time.Time `json:"time"`
	Msg      string    `json:"msg"`
	Level    string    `json:"level"`
	PID      int       `json:"pid"`
	Addr     string    `json:"addr"`
	Version  string    `json:"version"`
	CutShort int       `json:"cut_short"`
	Err      string    `json:"err"`
	raw      string
}

// startRelay runs bin with args (serve …) and env added to the test's,
// and waits until a process says it is ready. nl, if not nil, is the
// NOTIFY_SOCKET given in env.
func startRelay(t *testing.T, bin string, args, env []string, nl *notify.Listener) *relayProcs {
	t.Helper()
	p := spawnRelay(t, exec.Command(bin, args...), env, nl)
	p.waitFor("a relay process to be ready", 30*time.Second, func() bool { return len(p.readyPIDs()) > 0 })
	return p
}

// spawnRelay starts cmd (which starts the relay) without waiting.
func spawnRelay(t *testing.T, cmd *exec.Cmd, env []string, nl *notify.Listener) *relayProcs {
	t.Helper()
	cmd.Env = append(os.Environ(), env...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// An *os.File, so that Wait does not wait for the pipe's other
	// writers (the processes that take over) to close it.
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p := &relayProcs{t: t, first: cmd, firstDone: make(chan struct{})}
	go func() { p.firstErr = cmd.Wait(); close(p.firstDone) }()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l := logLine{raw: sc.Text()}
			json.Unmarshal(sc.Bytes(), &l)
			p.mu.Lock()
			p.lines = append(p.lines, l)
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.eof = true
		p.mu.Unlock()
	}()
	if nl != nil {
		go func() {
			for {
				m, err := nl.Read()
				if err != nil {
					return
				}
				p.mu.Lock()
				p.notes = append(p.notes, m)
				p.mu.Unlock()
			}
		}()
	}
	t.Cleanup(p.kill)
	return p
}

// kill ends every relay process still running (by pid: they were all
// started by this test).
func (p *relayProcs) kill() {
	for _, pid := range p.pids() {
		if !p.foreign && !exited(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	p.first.Process.Kill()
	<-p.firstDone
	// A binary built with -race (GOFLAGS=-race go test) reports here.
	if l := p.log(); strings.Contains(l, "WARNING: DATA RACE") {
		p.t.Errorf("a relay process reported a data race:\n%s", l)
	}
}

// pids are the relay processes that logged their start.
func (p *relayProcs) pids() []int {
	var out []int
	for _, l := range p.find("mjrelay starting") {
		out = append(out, l.PID)
	}
	return out
}

// find returns the lines with message msg.
func (p *relayProcs) find(msg string) []logLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []logLine
	for _, l := range p.lines {
		if l.Msg == msg {
			out = append(out, l)
		}
	}
	return out
}

// linesAt returns the lines logged at one of levels.
func (p *relayProcs) linesAt(levels ...string) []logLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []logLine
	for _, l := range p.lines {
		if slices.Contains(levels, l.Level) {
			out = append(out, l)
		}
	}
	return out
}

// log is everything logged so far.
func (p *relayProcs) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		b.WriteString(l.raw + "\n")
	}
	return b.String()
}

func (p *relayProcs) readyPIDs() []int {
	var out []int
	for _, l := range p.find("mjrelay ready") {
		out = append(out, l.PID)
	}
	return out
}

// main is the process that said it was ready last.
func (p *relayProcs) main() int {
	r := p.readyPIDs()
	if len(r) == 0 {
		return 0
	}
	return r[len(r)-1]
}

// addr is the address the first process logged for msg ("SMTP
// listening", "HTTP listening").
func (p *relayProcs) addr(msg string) string {
	if ls := p.find(msg); len(ls) > 0 {
		return ls[0].Addr
	}
	return ""
}

func (p *relayProcs) waitFor(what string, d time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s; log:\n%s", what, p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig to process pid.
func (p *relayProcs) signal(pid int, sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		p.t.Fatalf("signal %v to %d: %v", sig, pid, err)
	}
}

// restart sends SIGUSR2 to sigPID (0: the main process) and waits until a
// new process is ready and the former one has exited; it returns the new
// process's pid.
func (p *relayProcs) restart(sigPID int) int {
	p.t.Helper()
	old := p.main()
	if sigPID == 0 {
		sigPID = old
	}
	n := len(p.readyPIDs())
	p.signal(sigPID, syscall.SIGUSR2)
	p.waitFor("the new process to be ready", 2*time.Minute, func() bool { return len(p.readyPIDs()) > n })
	p.waitFor(fmt.Sprintf("the former process %d to exit", old), 2*time.Minute, func() bool { return exited(old) })
	return p.main()
}

// exited tells whether process pid has ended (a zombie has).
func exited(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// copyExecutable installs the file from at to by renaming a copy over it,
// as an upgrade replaces a running binary (writing into it would fail:
// text file busy).
func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := to + ".new"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// buildVersion builds mjrelay with main.version set to v into dir.
func buildVersion(t *testing.T, dir, v string) string {
	t.Helper()
	out := filepath.Join(dir, "mjrelay-"+v)
	if b, err := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", v, err, b)
	}
	return out
}

// needCommand finds a program the test needs; CI provides it (.ci/run),
// so there its absence fails the test.
func needCommand(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI (.ci/run installs it)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// odooLoad is testdata/odoo_load.py sending while the test runs.
type odooLoad struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   bytes.Buffer
	mu    sync.Mutex
	acked int
	done  chan struct{}
}

// loadResult is what odoo_load.py reports.
type loadResult struct {
	Acked      []string `json:"acked"`
	Refused    int      `json:"refused"`
	Unexpected []string `json:"unexpected"`
	Batches    int      `json:"batches"`
}

func startOdooLoad(t *testing.T, addr, user, password, prefix string) *odooLoad {
	t.Helper()
	py := needCommand(t, "python3")
	host, port, _ := strings.Cut(addr, ":")
	l := &odooLoad{t: t, done: make(chan struct{})}
	l.cmd = exec.Command(py, "testdata/odoo_load.py", host, port, user, password, prefix, "4", "10")
	l.cmd.Stdout = &l.out
	stderr, err := l.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if l.stdin, err = l.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), "progress %d", &n); err == nil {
				l.mu.Lock()
				l.acked = max(l.acked, n)
				l.mu.Unlock()
			} else if strings.TrimSpace(sc.Text()) != "" {
				t.Logf("odoo_load.py: %s", sc.Text())
			}
		}
	}()
	t.Cleanup(func() { l.cmd.Process.Kill(); l.cmd.Wait() })
	return l
}

func (l *odooLoad) count() int { l.mu.Lock(); defer l.mu.Unlock(); return l.acked }

// waitMore waits until n more mails are acknowledged.
func (l *odooLoad) waitMore(p *relayProcs, n int) {
	want := l.count() + n
	p.waitFor(fmt.Sprintf("%d acknowledged mails", want), time.Minute, func() bool { return l.count() >= want })
}

// check fails the test for a refused connection or an unexpected reply;
// it returns the acknowledged tokens.
func (r loadResult) check(t *testing.T) map[string]bool {
	t.Helper()
	if r.Refused != 0 || len(r.Unexpected) != 0 {
		t.Errorf("%d connections refused, %d unexpected replies: %v", r.Refused, len(r.Unexpected), r.Unexpected)
	}
	acked := map[string]bool{}
	for _, tok := range r.Acked {
		acked[tok] = true
	}
	return acked
}

// cutShort sums the deliveries the handovers cut short (they may have
// reached Mailjet: a copy of those may arrive twice).
func (p *relayProcs) cutShort() int {
	n := 0
	for _, l := range p.find("queue handed over: the messages accepted here are stored by the new process") {
		n += l.CutShort
	}
	return n
}

// stop ends the load (the batches in progress finish) and returns its report.
func (l *odooLoad) stop() loadResult {
	l.t.Helper()
	l.stdin.Close()
	<-l.done
	if err := l.cmd.Wait(); err != nil {
		l.t.Fatalf("odoo_load.py: %v", err)
	}
	var res loadResult
	if err := json.Unmarshal(l.out.Bytes(), &res); err != nil {
		l.t.Fatalf("odoo_load.py output: %v\n%s", err, l.out.String())
	}
	return res
}
