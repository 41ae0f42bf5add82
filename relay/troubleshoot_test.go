package relay_test

import (
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
)

// odooCase is one row of the README's troubleshooting table: what Odoo
// shows (Test Connection, or the failure reason of a mail) for a
// misconfiguration, run through the relay with Odoo's smtplib calls.
type odooCase struct {
	name string
	args func(e *env) []string // odoo_shows.py arguments
	want string                // the text Odoo shows, or its start when prefix
	// prefix: the text goes on with what varies (Python's SSL error
	// location, a number of seconds).
	prefix bool
}

func runOdooCases(t *testing.T, e *env, cases []odooCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := shows(t, tc.args(e)...)["shown"].(string)
			if got != tc.want && !(tc.prefix && strings.HasPrefix(got, tc.want)) {
				t.Errorf("Odoo shows\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// testConn runs Odoo's Test Connection; send sends one mail from Odoo's
// mail queue (envelope bounce@example.com).
func testConn(addr func(*env) string, enc, user, pass, from string) func(*env) []string {
	return func(e *env) []string { return []string{"test", "127.0.0.1", port(addr(e)), enc, user, pass, from} }
}

func sendMail(to, headerFrom, size string) func(*env) []string {
	return func(e *env) []string {
		return []string{"send", "127.0.0.1", port(e.plainAddr()), "starttls", odooUser, odooPass, "bounce@example.com", to, headerFrom, size}
	}
}

func plainAddr(e *env) string { return e.plainAddr() }
func tlsAddr(e *env) string   { return e.tlsAddr() }

// TestTroubleshootingTable: the README's table, from the relay's own
// replies (the sender-policy, load-balancer and login-throttle rows are in
// TestTroubleshootingSenders, TestBehindLoadBalancer and smtpd's
// TestOdooShows*).
func TestTroubleshootingTable(t *testing.T) {
	shopHash, _ := bcrypt.GenerateFromPassword([]byte("shop-pw"), bcrypt.MinCost)
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		c.SMTP.MaxMessageSize = 4000
		c.SMTP.MaxRecipients = 3
		c.SMTP.Users = append(c.SMTP.Users, config.User{Username: "shop", PasswordHash: config.Secret(shopHash), AllowedFrom: []string{"*@shop.example"}})
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	down := func(*env) string { return closed.Addr().String() }
	const from = "notifications@example.com"
	runOdooCases(t, e, []odooCase{
		{"works", testConn(plainAddr, "starttls", odooUser, odooPass, from), "Connection Test Successful!", false},
		{"wrong password", testConn(plainAddr, "starttls", odooUser, "wrong", from),
			"Server replied with following exception:\n (535, b'5.7.8 Authentication failed: use an mjrelay login from [[smtp.users]] (mjrelay hash-password), not the Mailjet API key')", false},
		{"Mailjet API key as the username", testConn(tlsAddr, "ssl", apiKey, secretKey, from),
			"Server replied with following exception:\n (535, b\"5.7.8 Authentication failed: this user name is a Mailjet API key; in Odoo use an mjrelay login from [[smtp.users]] (mjrelay hash-password), the Mailjet keys go in mjrelay's [mailjet] section\")", false},
		{"no username from an untrusted network", testConn(plainAddr, "starttls", "", "", from),
			"The server refused the sender address (notifications@example.com) with error b\"5.7.0 Authentication required: set the username and password of an mjrelay user in Odoo's outgoing mail server\"", false},
		{"login limited by allowed_from", testConn(plainAddr, "starttls", "shop", "shop-pw", from),
			"The server refused the sender address (notifications@example.com) with error b'5.7.1 Login shop may not use the envelope sender notifications@example.com: its allowed_from permits *@shop.example. Send from an allowed address in Odoo, or extend allowed_from for this login in the mjrelay configuration.'", false},
		{"SSL/TLS on the STARTTLS port", testConn(plainAddr, "ssl", odooUser, odooPass, from),
			"An SSL exception occurred. Check connection security type.\n [SSL: WRONG_VERSION_NUMBER] wrong version number", true},
		{"TLS (STARTTLS) on the SSL/TLS port", testConn(tlsAddr, "starttls", odooUser, odooPass, from),
			"Server replied with following exception:\n (554, b'5.7.0 relay.test This port expects TLS from the first byte: in Odoo choose Connection Encryption SSL/TLS for this port, or TLS (STARTTLS) with port ", true},
		{"relay not running, or wrong port", testConn(down, "starttls", odooUser, odooPass, from),
			"Connection Test Failed! Here is what we got instead:\n [Errno 111] Connection refused", false},
		{"a mail with a bad recipient", sendMail("client@example.org,root@localhost", "", "0"),
			"Mail Delivery Failed\nMail delivery failed via SMTP server 'None'.\nSMTPDataError: (550, b'5.1.3 Message refused, sent to no one: a recipient address is not valid: <root@localhost> (\"localhost\" is not a fully qualified domain). Correct them in Odoo and send again')", false},
		{"a mail with too many recipients", sendMail("a@example.org,b@example.org,c@example.org,d@example.org", "", "0"),
			"Mail Delivery Failed\nMail delivery failed via SMTP server 'None'.\nSMTPDataError: (550, b'5.5.3 Message refused, sent to no one: 4 recipients, at most 3 per message (smtp.max_recipients): send it in smaller batches, or raise smtp.max_recipients')", false},
		{"a mail too large", sendMail("client@example.org", "", "5000"),
			"Mail Delivery Failed\nMail delivery failed via SMTP server 'None'.\nSMTPSenderRefused: (552, b'5.3.4 Message too large: ", true},
		{"the relay down when the mail queue runs", func(*env) []string {
			return []string{"send", "127.0.0.1", port(closed.Addr().String()), "starttls", odooUser, odooPass, "bounce@example.com", "client@example.org"}
		}, "111\nConnection refused", false},
	})
}

// TestTroubleshootingFullQueue: Odoo's texts while the queue is full.
func TestTroubleshootingFullQueue(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.Queue.MaxMessages = 1 })
	e.up.SetMailFault(mjtest.Fault{Code: 451, Enh: smtp.EnhancedCode{4, 3, 0}, Message: "later"}) // the message stays queued
	c := e.client()
	if _, err := send(c, "bounce@example.com", []string{"client@example.org"}, testMessage("fills")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	const full = `b"4.3.1 Insufficient system storage: the relay's queue is full, try again later"`
	runOdooCases(t, e, []odooCase{
		{"Test Connection", testConn(plainAddr, "starttls", odooUser, odooPass, "notifications@example.com"),
			"The server refused the sender address (notifications@example.com) with error " + full, false},
		{"a mail", sendMail("client@example.org", "", "0"),
			"Mail Delivery Failed\nMail delivery failed via SMTP server 'None'.\nSMTPSenderRefused: (452, " + full + ", 'bounce@example.com')", false},
	})
}

// TestTroubleshootingSenders: Odoo's texts for senders the Mailjet account
// does not allow.
func TestTroubleshootingSenders(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, withAPI(account(t), "enforce"))
	const failed = "Mail Delivery Failed\nMail delivery failed via SMTP server 'None'.\n"
	runOdooCases(t, e, []odooCase{
		{"from_filter in a domain Mailjet does not know", testConn(plainAddr, "starttls", odooUser, odooPass, "notifications@unknown-domain.test"),
			"The server refused the sender address (notifications@unknown-domain.test) with error b'5.7.1 Envelope sender notifications@unknown-domain.test refused: unknown-domain.test is not a sending domain of the Mailjet account (no Active sender, no domain entry). Add and verify unknown-domain.test in Mailjet > Account settings > Senders & Domains, or use an alias domain verified there in Odoo.'", false},
		{"a From address that is not a Mailjet sender", sendMail("client@example.org", "Stranger <stranger@example.net>", "0"),
			failed + "SMTPDataError: (550, b'5.7.1 From address stranger@example.net refused: it is not a sender of the Mailjet account. Add and verify stranger@example.net (or *@example.net) in Mailjet > Account settings > Senders & Domains, or send as a verified address.')", false},
		{"a From address whose Mailjet sender is not active", sendMail("client@example.org", "inactive@example.net", "0"),
			failed + "SMTPDataError: (550, b'5.7.1 From address inactive@example.net refused: its Mailjet sender has status Inactive, not Active. Validate it in Mailjet > Account settings > Senders & Domains (activation email or DNS), or send as a verified address.')", false},
	})
}

// TestTroubleshootingNoSlot: what Odoo shows when every connection slot is
// in the middle of a transaction.
func TestTroubleshootingNoSlot(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.SMTP.MaxConnections = 1 })
	c := e.client()
	defer c.Close()
	if err := c.Mail("bounce@example.com", nil); err != nil { // busy: not evicted
		t.Fatal(err)
	}
	runOdooCases(t, e, []odooCase{
		{"Test Connection", testConn(plainAddr, "starttls", odooUser, odooPass, "notifications@example.com"),
			"Server replied with following exception:\n (421, b'4.7.0 relay.test Too many connections, try again later')", false},
	})
}
