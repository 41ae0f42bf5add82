package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
)

const (
	apiKey    = "0123456789abcdef0123456789abcdef"
	secretKey = "s3cr3t-mailjet-key-fedcba9876543210"
	odooPass  = "odoo-relay-password"
)

// binary is the mjrelay executable built once for the process tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mjrelay-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mjrelay")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building mjrelay: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// world is an upstream emulator plus a data_dir and config for the binary.
type world struct {
	t       testing.TB
	up      *mjtest.SMTPRelay
	dir     string
	cfgPath string
}

// newWorld sets up an upstream and a config; edits are old→new
// replacements applied to the config text.
func newWorld(t testing.TB, edits ...string) *world {
	up, err := mjtest.NewSMTPRelay(apiKey, secretKey, mjtest.StartTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	dir := t.TempDir()
	ca := filepath.Join(dir, "upstream-ca.pem")
	var pemBuf bytes.Buffer
	pem.Encode(&pemBuf, &pem.Block{Type: "CERTIFICATE", Bytes: up.CertDER()})
	os.WriteFile(ca, pemBuf.Bytes(), 0o600)
	hash, _ := bcrypt.GenerateFromPassword([]byte(odooPass), bcrypt.MinCost)
	cfg := fmt.Sprintf(`data_dir = %q
hostname = "relay.test"
[smtp]
listen = "127.0.0.1:0"
[[smtp.users]]
username = "odoo"
password_hash = %q
[mailjet]
api_key = %q
secret_key = %q
smtp_host = "127.0.0.1"
smtp_port = %d
tls_ca_file = %q
timeout = "5s"
[queue]
retry_min = "100ms"
retry_max = "300ms"
[http]
listen = "127.0.0.1:0"
[policy]
sender_check = "off"
`, filepath.Join(dir, "data"), hash, apiKey, secretKey, up.Port(), ca)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(cfg, edits[i]) {
			t.Fatalf("config edit: %q not found", edits[i])
		}
		cfg = strings.Replace(cfg, edits[i], edits[i+1], 1)
	}
	p := filepath.Join(dir, "mjrelay.toml")
	os.WriteFile(p, []byte(cfg), 0o600)
	return &world{t: t, up: up, dir: dir, cfgPath: p}
}

// proc is a running mjrelay serve.
type proc struct {
	cmd    *exec.Cmd
	addr   string   // the first SMTP listener's address (smtp.listen)
	smtp   []string // every SMTP listener's address, in the order logged
	http   string   // the web UI's address, when it listens
	stderr *bytes.Buffer
	mu     *sync.Mutex
	exited chan struct{}
	ready  chan struct{} // closed once it listens
}

func (w *world) serve() *proc {
	w.t.Helper()
	return startProc(w.t, exec.Command(binary, "serve", "--config", w.cfgPath), 1)
}

// startProc starts cmd (mjrelay serve) and waits until it logs its first
// smtpListeners SMTP addresses.
func startProc(t testing.TB, cmd *exec.Cmd, smtpListeners int) *proc {
	t.Helper()
	p := &proc{cmd: cmd}
	p.start(t, smtpListeners)
	p.waitListening(t, "mjrelay")
	return p
}

// start starts p.cmd and reads its log (safe from any goroutine: a failure
// shows in waitListening).
func (p *proc) start(t testing.TB, smtpListeners int) {
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	p.stderr, p.mu, p.exited, p.ready = &bytes.Buffer{}, &sync.Mutex{}, make(chan struct{}), make(chan struct{})
	if err := p.cmd.Start(); err != nil {
		p.stderr.WriteString(err.Error())
		close(p.exited)
		return
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				switch line.Msg {
				case "HTTP listening":
					p.http = line.Addr
				case "SMTP listening":
					if p.smtp = append(p.smtp, line.Addr); len(p.smtp) == smtpListeners {
						p.addr = p.smtp[0]
						close(p.ready)
					}
				}
			}
			p.mu.Unlock()
		}
	}()
	go func() { p.cmd.Wait(); pw.Close(); close(p.exited) }()
	t.Cleanup(func() {
		if p.cmd.Process != nil {
			p.cmd.Process.Kill()
		}
		<-p.exited
	})
}

// waitListening waits until p listens (name: for the failure message).
func (p *proc) waitListening(t testing.TB, name string) {
	t.Helper()
	select {
	case <-p.ready:
	case <-p.exited:
		t.Fatalf("%s exited at start:\n%s", name, p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start:\n%s", name, p.log())
	}
}

// web waits for the web UI's address (logged after SMTP's).
func (p *proc) web(t testing.TB) string {
	t.Helper()
	var addr string
	waitUntil(t, "the web UI to listen", 10*time.Second, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		addr = p.http
		return addr != ""
	})
	return addr
}

func (p *proc) log() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

func (p *proc) kill9() { p.cmd.Process.Signal(syscall.SIGKILL); <-p.exited }

func dial(t testing.TB, addr string) *smtp.Client {
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "odoo", odooPass)); err != nil {
		t.Fatal(err)
	}
	return c
}

func sendToken(c *smtp.Client, token string) error {
	return sendFrom(c, "bounce@example.com", "john@example.com", token)
}

// sendFrom sends a message from the envelope sender from and the header
// From headerFrom, with token as its subject.
func sendFrom(c *smtp.Client, from, headerFrom, token string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt("client@example.org", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: %s\r\nTo: client@example.org\r\nSubject: %s\r\n\r\n%s\r\n%s\r\n", headerFrom, token, token, strings.Repeat(strings.Repeat("z", 78)+"\r\n", 50))
	return w.Close()
}

// tokensAt returns how often each token arrived upstream.
func tokensAt(up *mjtest.SMTPRelay) map[string]int {
	out := map[string]int{}
	for _, r := range up.Received() {
		if i := bytes.Index(r.Data, []byte("\r\nSubject: ")); i >= 0 {
			rest := r.Data[i+len("\r\nSubject: "):]
			out[string(rest[:bytes.IndexByte(rest, '\r')])]++
		}
	}
	return out
}

// waitAllDelivered waits until every acknowledged token is upstream and
// returns how many extra copies arrived (duplicates).
func waitAllDelivered(t *testing.T, w *world, acked map[string]bool) int {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d acknowledged messages upstream", len(acked)), 60*time.Second, func() bool {
		got := tokensAt(w.up)
		for tok := range acked {
			if got[tok] == 0 {
				return false
			}
		}
		return true
	})
	dups := 0
	for _, n := range tokensAt(w.up) {
		dups += n - 1
	}
	return dups
}

func waitUntil(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
