package intake

import (
	"bufio"
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-message/charset"

	"github.com/mjrelay/mjrelay/relay/lanes"
)

// Header is what the relay reads from a message's header.
type Header struct {
	From      string // the address of the (first) From
	Subject   string // decoded
	MessageID string
	// For classification and Mailjet hints.
	ListUnsubscribe     string
	ListUnsubscribePost bool
	// OneClick is an Odoo mass mailing's one-click unsubscribe URL.
	OneClick    string
	Precedence  string
	MailjetPrio string
}

// ParseHeader reads the fields the relay logs and checks. It never fails:
// what cannot be read stays empty.
func ParseHeader(msg []byte) Header {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(msg[:end:end], "\r\n\r\n"...))))
	h, _ := r.ReadMIMEHeader()
	var info Header
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	if v := h.Get("From"); v != "" {
		if list, err := (&mail.AddressParser{WordDecoder: &dec}).ParseList(v); err == nil && len(list) > 0 {
			info.From = list[0].Address
		}
	}
	if v := h.Get("Subject"); v != "" {
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d
		}
		info.Subject = clip(v, 200)
	}
	info.MessageID = clip(strings.TrimSpace(h.Get("Message-Id")), 250)
	info.ListUnsubscribe = h.Get("List-Unsubscribe")
	_, info.ListUnsubscribePost = h["List-Unsubscribe-Post"]
	info.OneClick = lanes.OneClickURL(info.ListUnsubscribe, h.Get("List-Unsubscribe-Post"))
	info.Precedence = h.Get("Precedence")
	info.MailjetPrio = h.Get("X-Mailjet-Prio")
	return info
}

func clip(s string, n int) string { return s[:min(len(s), n)] }

// receivedHeader is the trace header the relay adds (RFC 5321 4.4, with the
// RFC 3848 protocol names).
func receivedHeader(helo, ip, host, id string, tls, auth, utf8 bool, rcpts []string, now time.Time) []byte {
	proto := "ESMTP"
	if utf8 {
		proto = "UTF8SMTP"
	}
	if tls {
		proto += "S"
	}
	if auth {
		proto += "A"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (mjrelay) with %s id %s", sanitize(helo), ip, host, proto, id)
	if len(rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", sanitize(rcpts[0]))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", now.Format(time.RFC1123Z))
	return []byte(b.String())
}

// sanitize keeps client-chosen text from breaking the header's syntax.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f || r == '(' || r == ')' || r == ';' {
			return '_'
		}
		return r
	}, clip(s, 255))
}

// TraceRoom is what a front reserves in front of the message in its
// buffer for the Received header (see Submission.Buffer), so that a large
// message is never copied to prepend it.
const TraceRoom = 1024

// framed returns trace followed by msg, and whether that shares buf's
// memory. While msg is still buf's body after the reserved room, the trace
// is written into the room and nothing is copied.
func framed(buf, msg, trace []byte) ([]byte, bool) {
	if len(trace) <= TraceRoom && len(msg) > 0 && len(msg) == len(buf)-TraceRoom && &msg[0] == &buf[TraceRoom] {
		start := TraceRoom - len(trace)
		copy(buf[start:], trace)
		return buf[start:], true
	}
	return append(append(make([]byte, 0, len(trace)+len(msg)), trace...), msg...), false
}

// isASCII reports whether the envelope's addresses are all ASCII (if not,
// the message needs SMTPUTF8 upstream).
func isASCII(from string, rcpts []string) bool {
	ascii := func(a string) bool {
		for i := 0; i < len(a); i++ {
			if a[i] >= 0x80 {
				return false
			}
		}
		return true
	}
	for _, r := range rcpts {
		if !ascii(r) {
			return false
		}
	}
	return ascii(from)
}
