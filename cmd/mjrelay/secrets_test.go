package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
)

// TestSecretsNeverWritten runs the relay with real keys and a sender check
// against the REST emulator, logs in badly and well, delivers, then greps
// everything the relay wrote — its log and every file in data_dir — for
// the Mailjet secret key, the Odoo API key, the passwords and the password
// hash. Odoo first refuses the key (its errors are logged and shown), then
// takes a report.
func TestSecretsNeverWritten(t *testing.T) {
	api := mjtest.NewAPI(apiKey, secretKey)
	defer api.Close()
	api.AddSender("*@example.com", "Active", "transactional")
	od := odootest.Start("prod", "relay", "not-the-key-yet")
	defer od.Close()
	old, repl := withOdoo(od)
	w := newWorld(t, `sender_check = "off"`, `sender_check = "enforce"`, "[mailjet]\n", "[mailjet]\napi_url = \""+api.URL()+"\"\n", old, repl)
	cfg, _ := os.ReadFile(w.cfgPath)
	hashLine := string(cfg[bytes.Index(cfg, []byte("$2a$")):])
	hash := hashLine[:strings.IndexByte(hashLine, '"')]

	p := w.serve()
	const badPassword = "wrong-Pa55-marker"
	c, err := smtp.Dial(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "odoo", badPassword)); err == nil {
		t.Fatal("bad password accepted")
	}
	c.Close()
	c = dial(t, p.addr)
	if err := sendToken(c, "secret-check"); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	waitUntil(t, "delivery", 20*time.Second, func() bool { return len(w.up.Received()) == 1 })
	// A bounce for it, reported to Odoo: refused, then taken.
	web := p.web(t)
	var qid string
	waitUntil(t, "the message in the store", 10*time.Second, func() bool {
		var list struct{ Messages []struct{ ID string } }
		if getJSON(t, "http://"+web+"/api/messages", &list); len(list.Messages) > 0 {
			qid = list.Messages[0].ID
		}
		return qid != ""
	})
	if code := postEvents(t, web, hardBounce(qid, "client@example.org")); code != http.StatusOK {
		t.Fatalf("webhook: %d", code)
	}
	waitUntil(t, "Odoo's refusal in the log", 20*time.Second, func() bool { return strings.Contains(p.log(), "Odoo refuses the relay") })
	od.SetKey(odooAPIKey)
	waitUntil(t, "the report", 60*time.Second, func() bool { return len(od.Bounces())+len(od.Rejected()) == 1 })
	time.Sleep(300 * time.Millisecond) // the traffic log flushes every 200 ms

	secrets := map[string]string{"Odoo API key": odooAPIKey, "Mailjet secret key": secretKey, "SMTP password": odooPass, "bad password": badPassword, "password hash": hash}
	check := func(where string, data []byte) {
		for name, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("the %s appears in %s", name, where)
			}
		}
	}
	// Everything the web UI and API show, raw download included.
	id := qid
	for _, path := range []string{"/", "/messages", "/messages/" + id, "/queue", "/senders", "/api/messages",
		"/api/messages/" + id, "/api/messages/" + id + "/raw", "/api/queue", "/api/senders", "/api/stats", "/metrics",
		"/api/feedback", "/readyz"} {
		check("GET "+path, get(t, "http://"+web+path))
	}
	check("the process log", []byte(p.log()))
	n := 0
	filepath.Walk(filepath.Join(w.dir, "data"), func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			data, _ := os.ReadFile(path)
			check(path, data)
			n++
		}
		return nil
	})
	if n < 4 || !strings.Contains(p.log(), `"api_key":"`+apiKey[:4]+`…"`) {
		t.Fatalf("checked %d files; the log should name the API key by its first 4 characters (it does not?)", n)
	}
	// The public key is not a secret, but the log shows only enough of it to tell keys apart.
	if strings.Contains(p.log(), apiKey) {
		t.Errorf("the process log shows the whole public API key")
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return b
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	json.Unmarshal(get(t, url), v)
}

// TestClusterSecretsNeverShown: the database password, in the URL (node
// 1) or in MJRELAY_POSTGRES_PASSWORD (node 2), is nowhere in the nodes'
// logs, pages, API, metrics or data_dir. (The throw-away cluster trusts
// local connections, so any password connects.)
func TestClusterSecretsNeverShown(t *testing.T) {
	const inURL, inEnv = "pgURL-s3cret-marker", "pgENV-s3cret-marker"
	db := pgtest.New(t)
	url := strings.Replace(db.URL("postgres"), "postgres@", "postgres:"+inURL+"@", 1)
	cw := newClusterWorld(t, url, 2, "10s")
	cfg2, _ := os.ReadFile(cw.cfgs[1])
	os.WriteFile(cw.cfgs[1], bytes.Replace(cfg2, []byte(":"+inURL), nil, 1), 0o600)
	p1 := cw.node(1)
	cmd := exec.Command(binary, "serve", "--config", cw.cfgs[1])
	cmd.Env = append(os.Environ(), "MJRELAY_POSTGRES_PASSWORD="+inEnv)
	p2 := startProc(t, cmd, 1)
	c := dial(t, p1.addr)
	if err := sendToken(c, "cluster-secret-check"); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	waitUntil(t, "delivery", 20*time.Second, func() bool { return len(cw.up.Received()) == 1 })
	if out, code := runCLI(t, "queue", "--config", cw.cfgs[0], "list"); code != 0 || strings.Contains(out, inURL) {
		t.Errorf("mjrelay queue list (exit %d) shows the password or failed:\n%s", code, out)
	}
	for _, p := range []*proc{p1, p2} {
		web := "http://" + p.web(t)
		for _, path := range []string{"/", "/queue", "/nodes", "/api/nodes", "/api/queue", "/metrics", "/readyz"} {
			b := get(t, web+path)
			if bytes.Contains(b, []byte(inURL)) || bytes.Contains(b, []byte(inEnv)) {
				t.Errorf("GET %s shows the database password", path)
			}
		}
		if l := p.log(); strings.Contains(l, inURL) || strings.Contains(l, inEnv) {
			t.Errorf("the process log shows the database password")
		}
	}
	filepath.Walk(cw.dir, func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasSuffix(path, ".toml") {
			if data, _ := os.ReadFile(path); bytes.Contains(data, []byte(inURL)) || bytes.Contains(data, []byte(inEnv)) {
				t.Errorf("%s holds the database password", path)
			}
		}
		return nil
	})
}
