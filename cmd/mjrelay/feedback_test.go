package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
)

const (
	odooAPIKey = "odoo-api-key-never-shown-5e1f"
	hookPass   = "mailjet-webhook-password"
)

// withOdoo returns the config edit that reports to the stand-in od and
// takes Mailjet's webhook.
func withOdoo(od *odootest.Server) (old, new string) {
	hash, _ := bcrypt.GenerateFromPassword([]byte(hookPass), bcrypt.MinCost)
	return "[http]\n", fmt.Sprintf("[odoo]\nurl = %q\ndb = \"prod\"\nlogin = \"relay\"\napi_key = %q\nbounce_address = \"bounce@example.com\"\n"+
		"[webhooks]\nmailjet_user = \"mailjet\"\nmailjet_password_hash = %q\n[http]\n", od.URL(), odooAPIKey, hash)
}

// sendOdooMail sends one message with a Message-Id and returns its queue id.
func sendOdooMail(t *testing.T, addr, rcpt, msgID string) string {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	if err := c.Mail("bounce@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: john@example.com\r\nTo: %s\r\nSubject: Quote\r\nMessage-Id: %s\r\n\r\nHello.\r\n", rcpt, msgID)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusText[strings.LastIndex(resp.StatusText, " ")+1:]
}

// postEvents posts Mailjet events to the relay's webhook; it returns the
// HTTP status.
func postEvents(t *testing.T, web string, evs ...map[string]any) int {
	t.Helper()
	body, _ := json.Marshal(evs)
	req, _ := http.NewRequest(http.MethodPost, "http://"+web+"/webhooks/mailjet", bytes.NewReader(body))
	req.SetBasicAuth("mailjet", hookPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func hardBounce(id, email string) map[string]any {
	return map[string]any{"event": "bounce", "time": time.Now().Unix(), "MessageID": 13792286917004336, "Message_GUID": "1ab23cd4-0000-4000-8000-000000000001",
		"email": email, "mj_campaign_id": 0, "mj_contact_id": 0, "customcampaign": "", "CustomID": id, "Payload": "",
		"blocked": false, "hard_bounce": true, "error_related_to": "recipient", "error": "user unknown", "comment": "550 5.1.1 User unknown"}
}

// TestOdooFeedbackKill9 kills the relay (SIGKILL) right after the webhook's
// 200, while Odoo is unreachable: after the restart the bounce and the
// blacklisting reach Odoo, once each, and Mailjet's resend adds nothing.
func TestOdooFeedbackKill9(t *testing.T) {
	od := odootest.Start("prod", "relay", odooAPIKey)
	defer od.Close()
	old, repl := withOdoo(od)
	w := newWorld(t, old, repl)
	p := w.serve()
	const msgID = "<kill9.1700000000.1-openerp-3-res.partner@odoo.test>"
	od.AddMessage(msgID)
	id := sendOdooMail(t, p.addr, "gone@example.org", msgID)
	id2 := sendOdooMail(t, p.addr, "angry@example.org", "<kill9b@odoo.test>")
	waitUntil(t, "delivery", 20*time.Second, func() bool { return len(w.up.Received()) == 2 })
	web := p.web(t)
	od.SetDown(true)
	spam := map[string]any{"event": "spam", "time": time.Now().Unix(), "MessageID": 13792286917004337, "email": "angry@example.org",
		"CustomID": id2, "source": "JMRPP"}
	if code := postEvents(t, web, hardBounce(id, "gone@example.org"), spam); code != http.StatusOK {
		t.Fatalf("webhook answered %d", code)
	}
	p.kill9()
	if n := len(od.Bounces()) + len(od.Blacklisted()); n != 0 {
		t.Fatalf("reported before the kill: %d", n)
	}
	od.SetDown(false)
	p = w.serve()
	waitUntil(t, "the reports after the restart", 60*time.Second, func() bool {
		return len(od.Bounces()) == 1 && len(od.Blacklisted()) == 1
	})
	if code := postEvents(t, p.web(t), hardBounce(id, "gone@example.org"), spam); code != http.StatusOK {
		t.Fatalf("webhook answered %d to the resend", code)
	}
	time.Sleep(time.Second) // a doubled report would arrive now
	if b, bl, r := od.Bounces(), od.Blacklisted(), od.Rejected(); len(b) != 1 || len(bl["angry@example.org"]) != 1 || len(r) != 0 {
		t.Fatalf("bounces %d, blacklist %v, rejected %+v\n%s", len(b), bl, r, p.log())
	}
	if b := od.Bounces()[0]; b.Recipient != "gone@example.org" || b.Original != msgID || b.Status != "5.1.1" {
		t.Fatalf("bounce %+v", b)
	}
}
