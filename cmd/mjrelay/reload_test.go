package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/notify"
)

// writeCert writes a new self-signed certificate and its key; it returns
// the certificate.
func writeCert(t *testing.T, certFile, keyFile, cn string) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return der
}

// editConfig applies old→new replacements to the config file.
func editConfig(t *testing.T, path string, edits ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(s, edits[i]) {
			t.Fatalf("config edit: %q not found in\n%s", edits[i], s)
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsSession opens an SMTP session with STARTTLS and returns it with the
// relay's certificate.
func tlsSession(t *testing.T, addr string) (*smtp.Client, []byte) {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(); err != nil { // the handshake is done
		t.Fatal(err)
	}
	st, ok := c.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		t.Fatal("no TLS after STARTTLS")
	}
	return c, st.PeerCertificates[0].Raw
}

// reloadSignal sends SIGHUP to the main process and waits for its outcome
// (n-th such line): the line logged.
func reloadSignal(p *relayProcs, msg string, n int) logLine {
	p.t.Helper()
	p.signal(p.main(), syscall.SIGHUP)
	p.waitFor(fmt.Sprintf("%q (%d)", msg, n), 30*time.Second, func() bool { return len(p.find(msg)) >= n })
	return p.find(msg)[n-1]
}

// TestReloadUnderOdooLoad: Odoo-style senders send while SIGHUP reloads a
// changed configuration: a new login works at once, a trusted network is
// added, the TLS certificate is replaced (a new connection gets the new
// one while a session opened before goes on with the old one), and the
// upstream moves (the transports are built again: new mail goes to the new
// one). An invalid configuration is refused with its key in the log, and
// the one in force stays; a key that needs a restart is reported and keeps
// its value. No connection is refused, every reply is what it would be
// anyway, every acknowledged mail is delivered once.
func TestReloadUnderOdooLoad(t *testing.T) {
	up2, err := mjtest.NewSMTPRelay(apiKey, secretKey, mjtest.StartTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer up2.Close()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "relay-cert.pem"), filepath.Join(dir, "relay-key.pem")
	cert1 := writeCert(t, certFile, keyFile, "relay-one.test")
	w := newWorld(t, "[smtp]\n", fmt.Sprintf("[smtp]\ntls_cert = %q\ntls_key = %q\n", certFile, keyFile))
	// Both upstreams' certificates are trusted from the start.
	ca, _ := os.OpenFile(filepath.Join(w.dir, "upstream-ca.pem"), os.O_APPEND|os.O_WRONLY, 0o600)
	pem.Encode(ca, &pem.Block{Type: "CERTIFICATE", Bytes: up2.CertDER()})
	ca.Close()
	nl, err := notify.Listen(filepath.Join(dir, "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()

	p := startRelay(t, binary, []string{"serve", "--config", w.cfgPath}, []string{notify.Env + "=" + nl.Addr()}, nl)
	addr := p.addr("SMTP listening")
	load := startOdooLoad(t, addr, "odoo", odooPass, "reload")
	before, got := tlsSession(t, addr)
	if !bytes.Equal(got, cert1) {
		t.Fatal("the relay does not present its configured certificate")
	}
	if err := before.Auth(sasl.NewPlainClient("", "odoo", odooPass)); err != nil {
		t.Fatal(err)
	}
	if err := sendToken(before, "session-before-1"); err != nil {
		t.Fatal(err)
	}
	const odoo2Pass = "second-login-password"
	hash2, _ := bcrypt.GenerateFromPassword([]byte(odoo2Pass), bcrypt.MinCost)
	if c, err := smtp.Dial(addr); err != nil {
		t.Fatal(err)
	} else if err := c.Auth(sasl.NewPlainClient("", "odoo2", odoo2Pass)); err == nil {
		t.Fatal("odoo2 logged in before it was configured")
	}
	load.waitMore(p, 40)

	// The reload.
	cert2 := writeCert(t, certFile, keyFile, "relay-two.test")
	editConfig(t, w.cfgPath,
		"[[smtp.users]]\n", fmt.Sprintf("trusted_networks = [\"127.0.0.1/32\"]\n[[smtp.users]]\nusername = \"odoo2\"\npassword_hash = %q\n[[smtp.users]]\n", hash2),
		fmt.Sprintf("smtp_port = %d", w.up.Port()), fmt.Sprintf("smtp_port = %d", up2.Port()))
	done := reloadSignal(p, "configuration reloaded", 1)
	t.Logf("reloaded: %s", done.raw)

	after, got := tlsSession(t, addr)
	if !bytes.Equal(got, cert2) {
		t.Error("a connection after the reload does not get the new certificate")
	}
	after.Close()
	if err := sendToken(before, "session-before-2"); err != nil {
		t.Errorf("the session opened before the reload: %v", err)
	}
	before.Quit()
	useLogin := func(token string) error {
		c := dial2(t, addr, "odoo2", odoo2Pass)
		defer c.Close()
		return sendToken(c, token)
	}
	if err := useLogin("new-login-1"); err != nil {
		t.Errorf("the login added by the reload: %v", err)
	}
	trusted := func(token string) error {
		c, err := smtp.Dial(addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return sendToken(c, token) // no AUTH
	}
	if err := trusted("trusted-1"); err != nil {
		t.Errorf("no login from the network the reload trusts: %v", err)
	}
	waitUntil(t, "mail through the new upstream", 30*time.Second, func() bool { return tokensAt(up2)["trusted-1"] == 1 })
	load.waitMore(p, 40)

	// An invalid configuration: refused, the key named, the one in force stays.
	editConfig(t, w.cfgPath, "[queue]\n", "[routes.bulk]\nconcurrency = 0\n[queue]\n")
	bad := reloadSignal(p, "configuration not reloaded: the one in force stays", 1)
	if !strings.Contains(bad.Err, "routes.bulk.concurrency") {
		t.Errorf("the refusal does not name the key: %s", bad.raw)
	}
	if err := useLogin("new-login-2"); err != nil {
		t.Errorf("after the refused reload, the login of the configuration in force: %v", err)
	}
	if err := trusted("trusted-2"); err != nil {
		t.Errorf("after the refused reload, the trusted network of the configuration in force: %v", err)
	}

	// A key that needs a restart: reported, kept.
	editConfig(t, w.cfgPath, "[routes.bulk]\nconcurrency = 0\n", "[routes.bulk]\nconcurrency = 3\n", `hostname = "relay.test"`, `hostname = "renamed.test"`)
	restart := reloadSignal(p, "configuration keys that need a restart keep their value until then (mjrelay restart: no connection refused)", 1)
	if !strings.Contains(restart.raw, `"hostname"`) {
		t.Errorf("the keys that need a restart: %s", restart.raw)
	}
	if g := greeting(t, addr); !strings.HasPrefix(g, "220 relay.test ") {
		t.Errorf("greeting after a reload changed hostname (needs a restart): %q", g)
	}
	// `mjrelay reload` asks the same through the control socket.
	editConfig(t, w.cfgPath, "[routes.bulk]\nconcurrency = 3\n", "[routes.bulk]\nconcurrency = 3\nrate = 50.0\n")
	out, err := exec.Command(binary, "reload", "--config", w.cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "routes.bulk.rate") || !strings.Contains(string(out), "hostname") {
		t.Errorf("mjrelay reload: %v\n%s", err, out)
	}
	load.waitMore(p, 40)
	res := load.stop()
	res.check(t)
	got1, got2 := map[string]int{}, map[string]int{}
	waitUntil(t, "every acknowledged mail upstream", time.Minute, func() bool {
		got1, got2 = tokensAt(w.up), tokensAt(up2)
		for _, tok := range res.Acked {
			if got1[tok]+got2[tok] == 0 {
				return false
			}
		}
		return true
	})
	dups := 0
	for _, m := range []map[string]int{got1, got2} {
		for _, n := range m {
			dups += n - 1
		}
	}
	for tok := range got1 {
		dups += min(got2[tok], 1)
	}
	t.Logf("%d mails acknowledged in %d batches across 4 reloads (1 refused), 0 refused connections; %d to the first upstream, %d to the second; %d duplicates",
		len(res.Acked), res.Batches, len(got1), len(got2), dups)
	if dups != 0 {
		t.Errorf("%d duplicates: a reload sends nothing twice", dups)
	}
	if len(p.readyPIDs()) != 1 {
		t.Errorf("the reloads changed the process: %v", p.readyPIDs())
	}
	// Each reload told the service manager RELOADING=1, then READY=1.
	p.mu.Lock()
	notes := slices.Clone(p.notes)
	p.mu.Unlock()
	var seq []string
	for _, m := range notes {
		switch {
		case m["RELOADING"] == "1":
			seq = append(seq, "reloading")
		case m["READY"] == "1":
			seq = append(seq, "ready")
		}
	}
	want := []string{"ready"}
	for range 4 {
		want = append(want, "reloading", "ready")
	}
	if !slices.Equal(seq, want) {
		t.Errorf("notifications %v, want %v", seq, want)
	}
}

// greeting is the first line the server sends.
func greeting(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// dial2 logs in as user.
func dial2(t *testing.T, addr, user, pass string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		c.Close()
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}
