package relay_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// python3 finds the interpreter; CI installs it, so there it is required.
func python3(t *testing.T) string { return odootest.Python3(t) }

func replay(t *testing.T, args ...string) map[string]any {
	t.Helper()
	return runPython(t, "testdata/odoo_smtp.py", args...)
}

// runPython runs a script of testdata and decodes the JSON it prints.
func runPython(t *testing.T, script string, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(python3(t), append([]string{script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s output %q: %v", script, out, err)
	}
	return res
}

func TestOdooTestConnection(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	tests := []struct {
		enc, port string
	}{
		{"none", port(e.plainAddr())},
		{"starttls", port(e.plainAddr())},
		{"ssl", port(e.tlsAddr())},
	}
	for _, tc := range tests {
		t.Run(tc.enc, func(t *testing.T) {
			res := replay(t, "test-connection", "127.0.0.1", tc.port, tc.enc, odooUser, odooPass, "notifications@example.com")
			if res["result"] != "Connection Test Successful!" {
				t.Fatalf("Odoo would show: %v (%v)", res["result"], res)
			}
			if res["size"] != "26214400" {
				t.Errorf("SIZE advertised as %v; Odoo 18 reads it for max_email_size", res["size"])
			}
			feats, _ := json.Marshal(res["features"])
			for _, f := range []string{"auth", "8bitmime", "smtputf8", "size"} {
				if !strings.Contains(string(feats), `"`+f+`"`) {
					t.Errorf("EHLO lacks %s: %s", f, feats)
				}
			}
			if strings.Contains(string(feats), "cram") {
				t.Errorf("CRAM-MD5 advertised: %s", feats)
			}
		})
	}
	e.waitFor("three aborted transactions", func() bool { return len(e.traffic.Events(trafficlog.Aborted)) == 3 })
	for _, ev := range e.traffic.Events(trafficlog.Aborted) {
		if !strings.Contains(ev.Reason, "Test Connection") || ev.From != "notifications@example.com" {
			t.Errorf("aborted event %+v", ev)
		}
	}
	if st := e.r.Queue.Stats(); st.Messages != 0 || len(e.up.Received()) != 0 || len(e.traffic.Events(trafficlog.Received)) != 0 {
		t.Fatalf("a Test Connection queued or forwarded something: %+v", st)
	}
}

func TestOdooBatchOnOneSession(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	const n = 1000
	res := replay(t, "batch", "127.0.0.1", port(e.plainAddr()), "starttls", odooUser, odooPass, "1000")
	if res["sent"] != float64(n) || len(res["errors"].([]any)) != 0 || len(res["refused"].([]any)) != 0 {
		t.Fatalf("batch: %v", res)
	}
	if res["utf8"] != "ok" {
		t.Fatalf("SMTPUTF8 message: %v", res["utf8"])
	}
	got := e.waitDelivered(n + 1)
	var eight, utf8 int
	for _, g := range got {
		if bytes.Contains(g.Data, []byte("Content-Transfer-Encoding: 8bit")) && bytes.Contains(g.Data, []byte("À bientôt.\r\n.\r\n..leading dots\r\n")) {
			eight++
		}
		if len(g.Rcpts) == 1 && g.Rcpts[0] == "jürgen@example.org" && g.MailOpts.UTF8 {
			utf8++
		}
	}
	if eight != n {
		t.Errorf("%d of %d messages arrived with their 8-bit body intact", eight, n)
	}
	if utf8 != 1 {
		t.Errorf("SMTPUTF8 envelope not forwarded with SMTPUTF8")
	}
	recv := e.traffic.Events(trafficlog.Received)
	if len(recv) != n+1 || !strings.HasPrefix(recv[0].Subject, "Facture n°0 — été") {
		t.Errorf("%d received events; first subject %q", len(recv), recv[0].Subject)
	}
}
