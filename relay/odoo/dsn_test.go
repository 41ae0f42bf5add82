package odoo_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/odoo"
	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
)

// TestDSNReadByPythonAsOdooDoes parses the DSN with Python's email library
// and Odoo's own extraction steps (testdata/odoo_bounce.py).
func TestDSNReadByPythonAsOdooDoes(t *testing.T) {
	py := odootest.Python3(t)
	orig := odoo.Original{MessageID: "<a.1-openerp-5-res.partner@odoo>", From: "john@example.com", To: "jane@example.org",
		Subject: "Devis n° 42 — été", Date: time.Unix(1700000000, 0)}
	raw := odoo.DSN(odoo.Bounce{MessageID: "<dsn-x@relay.test>", Hostname: "relay.test", To: "bounce@example.com",
		Recipient: "Jane@Example.org", Status: "5.1.1", Diagnostic: "smtp; 550 5.1.1 <jane@example.org>: utilisateur inconnu ü",
		Explanation: "L'adresse n'existe pas (Mailjet: user unknown).", QueueID: "q", Failed: time.Unix(1700000100, 0),
		Headers: orig.Headers()})
	cmd := exec.Command(py, "testdata/odoo_bounce.py")
	cmd.Stdin = bytes.NewReader(raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, stderr.String(), raw)
	}
	var got struct {
		MessageID        string   `json:"message_id"`
		ContentType      string   `json:"content_type"`
		FromMailerDaemon bool     `json:"from_mailer_daemon"`
		To               []string `json:"to"`
		BouncedEmail     any      `json:"bounced_email"`
		Status           string   `json:"status"`
		IDs              []string `json:"bounced_msg_ids"`
		Body             string   `json:"body"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got.MessageID != "<dsn-x@relay.test>" || got.ContentType != "multipart/report" || !got.FromMailerDaemon ||
		len(got.To) != 1 || got.To[0] != "bounce@example.com" || got.BouncedEmail != "jane@example.org" || got.Status != "5.1.1" ||
		len(got.IDs) != 1 || got.IDs[0] != orig.MessageID || !strings.Contains(got.Body, "L'adresse n'existe pas") {
		t.Fatalf("Odoo would read %+v from\n%s", got, raw)
	}
}
