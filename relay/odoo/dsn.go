package odoo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
)

// Bounce is one failed recipient of one message, as Odoo is told of it.
type Bounce struct {
	// MessageID is the DSN's own Message-Id ("<…>"): new, never the
	// original's (Odoo ignores a message whose Message-Id it knows).
	MessageID string
	// Hostname is the reporting host (Reporting-MTA, MAILER-DAEMON@).
	Hostname string
	// To is Odoo's bounce address (the DSN's To), e.g. bounce@example.com.
	To string
	// Recipient is the address that failed (Final-Recipient).
	Recipient string
	// Status is the RFC 3463 code: 5.x.x for a hard failure, 4.x.x for a
	// soft one.
	Status string
	// Diagnostic is the remote text, with its type: "smtp; 550 5.1.1 No
	// such user" or "X-Mailjet; recipient: user unknown".
	Diagnostic string
	// RemoteMTA is who said so ("dns; in-v3.mailjet.com"), if known.
	RemoteMTA string
	// Explanation is the sentence for the Odoo user: it becomes the
	// failure reason Odoo shows on the mail.
	Explanation string
	// QueueID is the relay's id of the original message.
	QueueID string
	// Arrival is when the relay received the original; Failed when the
	// failure happened.
	Arrival, Failed time.Time
	// Headers is the original message's header block (CRLF lines); its
	// Message-Id (and X-Odoo-Message-Id) is how Odoo finds the original.
	Headers []byte
}

// DSN builds the RFC 3464 delivery status notification Odoo 17/18
// recognise as a bounce (mail.thread _detect_is_bounce and
// _message_parse_extract_bounce): From MAILER-DAEMON, To the bounce
// address, multipart/report with report-type=delivery-status; a first
// text/plain part (the failure reason); a message/delivery-status part
// with the per-message block, a blank line and one per-recipient block
// (Final-Recipient: rfc822; addr, Action: failed, Status, Diagnostic-Code);
// then the original's headers as text/rfc822-headers. The same Bounce
// gives the same bytes.
func DSN(b Bounce) []byte {
	sum := sha256.Sum256([]byte(b.MessageID))
	boundary := "mjrelay-dsn-" + hex.EncodeToString(sum[:12])
	var m bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&m, "%s: %s\r\n", k, v) }
	h("From", "Mail Delivery System <MAILER-DAEMON@"+b.Hostname+">")
	if b.To != "" {
		h("To", "<"+b.To+">")
	}
	h("Subject", "Undelivered Mail Returned to Sender")
	h("Date", b.Failed.UTC().Format(time.RFC1123Z))
	h("Message-Id", b.MessageID)
	h("Auto-Submitted", "auto-replied")
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	m.WriteString("\r\nThis is a MIME-encapsulated message.\r\n")

	part := func(ctype, cte string) {
		fmt.Fprintf(&m, "\r\n--%s\r\nContent-Type: %s\r\n", boundary, ctype)
		if cte != "" {
			fmt.Fprintf(&m, "Content-Transfer-Encoding: %s\r\n", cte)
		}
		m.WriteString("\r\n")
	}
	part("text/plain; charset=utf-8", "quoted-printable")
	qp := quotedprintable.NewWriter(&m)
	fmt.Fprintf(qp, "%s\r\n\r\nThe mail could not be delivered to <%s>.\r\n", strings.TrimSpace(b.Explanation), b.Recipient)
	fmt.Fprintf(qp, "\r\nReported by the mail relay %s (queue id %s).\r\n", b.Hostname, b.QueueID)
	qp.Close()

	part("message/delivery-status", "7bit")
	fmt.Fprintf(&m, "Reporting-MTA: dns; %s\r\n", b.Hostname)
	if b.QueueID != "" {
		fmt.Fprintf(&m, "X-Mjrelay-Queue-ID: %s\r\n", b.QueueID)
	}
	if !b.Arrival.IsZero() {
		fmt.Fprintf(&m, "Arrival-Date: %s\r\n", b.Arrival.UTC().Format(time.RFC1123Z))
	}
	m.WriteString("\r\n")
	fmt.Fprintf(&m, "Final-Recipient: rfc822; %s\r\n", ascii(b.Recipient, 320))
	m.WriteString("Action: failed\r\n")
	fmt.Fprintf(&m, "Status: %s\r\n", b.Status)
	if b.RemoteMTA != "" {
		fmt.Fprintf(&m, "Remote-MTA: %s\r\n", ascii(b.RemoteMTA, 200))
	}
	if b.Diagnostic != "" {
		fmt.Fprintf(&m, "Diagnostic-Code: %s\r\n", ascii(b.Diagnostic, 900))
	}
	if !b.Failed.IsZero() {
		fmt.Fprintf(&m, "Last-Attempt-Date: %s\r\n", b.Failed.UTC().Format(time.RFC1123Z))
	}

	part("text/rfc822-headers", "")
	hdr := bytes.TrimRight(b.Headers, "\r\n")
	m.Write(hdr)
	m.WriteString("\r\n")
	fmt.Fprintf(&m, "\r\n--%s--\r\n", boundary)
	return m.Bytes()
}

// ascii keeps a delivery-status field on one US-ASCII line of at most n
// bytes (RFC 3464 fields are ASCII; a remote text may not be).
func ascii(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\r' || r == '\n' || r == '\t':
			return ' '
		case r < 0x20 || r >= 0x7f:
			return '?'
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n]
	}
	return strings.TrimSpace(s)
}

// Original is what the relay kept of a message when its raw bytes are
// gone: enough for Odoo to find it (the Message-Id) and for a person to
// recognise it.
type Original struct {
	MessageID, From, To, Subject string
	Date                         time.Time
}

// Headers rebuilds a header block from what the relay kept.
func (o Original) Headers() []byte {
	var b bytes.Buffer
	h := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	h("Message-Id", o.MessageID)
	h("From", ascii(o.From, 320))
	h("To", ascii(o.To, 900))
	h("Subject", mime.QEncoding.Encode("utf-8", o.Subject))
	if !o.Date.IsZero() {
		h("Date", o.Date.UTC().Format(time.RFC1123Z))
	}
	return b.Bytes()
}

// HeaderBlock returns a raw message's header section (up to the blank
// line), at most max bytes, cut at a line end.
func HeaderBlock(raw []byte, max int) []byte {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(raw)
	}
	hdr := raw[:end]
	if len(hdr) > max {
		hdr = hdr[:max]
		if i := bytes.LastIndex(hdr, []byte("\r\n")); i > 0 {
			hdr = hdr[:i]
		}
	}
	return append([]byte(nil), hdr...)
}
