package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/charset"
)

var errBareCR = errors.New("bare CR")

// normalizeEOL checks and fixes line endings. A bare LF becomes CRLF, as
// Python's smtplib would have sent it; a bare CR (never produced by a
// well-behaved client, and the stuff of SMTP smuggling) is refused. The
// common case, a message that is already clean, is returned as is.
func normalizeEOL(b []byte) ([]byte, error) {
	bareLF := false
	for i := 0; ; {
		j := bytes.IndexAny(b[i:], "\r\n")
		if j < 0 {
			break
		}
		i += j
		if b[i] == '\r' {
			if i+1 >= len(b) || b[i+1] != '\n' {
				return nil, errBareCR
			}
			i += 2
			continue
		}
		bareLF = true
		i++
	}
	if !bareLF {
		return b, nil
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for i := 0; i < len(b); i++ {
		if b[i] == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, b[i])
	}
	return out, nil
}

// headerInfo is what the relay reads from a message's header.
type headerInfo struct {
	From      string // the address of the (first) From
	Subject   string // decoded
	MessageID string
	// For classification and Mailjet hints.
	ListUnsubscribe     string
	ListUnsubscribePost bool
	Precedence          string
	MailjetPrio         string
}

// parseHeader reads the fields the relay logs and checks. It never fails:
// what cannot be read stays empty.
func parseHeader(msg []byte) headerInfo {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(msg[:end:end], "\r\n\r\n"...))))
	h, _ := r.ReadMIMEHeader()
	var info headerInfo
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
	info.Precedence = h.Get("Precedence")
	info.MailjetPrio = h.Get("X-Mailjet-Prio")
	return info
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

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

// traceRoom is reserved in front of the message in the DATA buffer for the
// Received header, so that a large message is never copied to prepend it.
const traceRoom = 1024

// framed returns trace followed by msg, and whether that shares buf's
// memory. While msg is still buf's body after the reserved room, the trace
// is written into the room and nothing is copied.
func framed(buf, msg, trace []byte) ([]byte, bool) {
	if len(trace) <= traceRoom && len(msg) > 0 && len(msg) == len(buf)-traceRoom && &msg[0] == &buf[traceRoom] {
		start := traceRoom - len(trace)
		copy(buf[start:], trace)
		return buf[start:], true
	}
	return append(append(make([]byte, 0, len(trace)+len(msg)), trace...), msg...), false
}

// readBody reads DATA into buf, keeping at most limit+1 bytes, and returns
// the size of the message as the client sent it: past the limit the rest is
// read and counted, not kept (go-smtp would read it to the end of DATA
// anyway), so that a refusal can say how large it was. The reader's errors
// come back unchanged (smtp.ErrTooLongLine keeps its identity).
func readBody(buf *bytes.Buffer, r io.Reader, limit int64) (int64, error) {
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil || n <= limit {
		return n, err
	}
	rest, err := io.Copy(io.Discard, r)
	return n + rest, err
}

// tooLargeText is the reply to a message of size bytes over limit.
func tooLargeText(size, limit int64) string {
	got, lim := sizeText(size), sizeText(limit)
	if got == lim {
		got, lim = fmt.Sprintf("%d bytes", size), fmt.Sprintf("%d bytes", limit)
	}
	return fmt.Sprintf("Message too large: %s, the limit is %s (smtp.max_message_size)", got, lim)
}

// sizeText writes a size the way Odoo does (MB of 1024 KB): "4.5 MB".
func sizeText(n int64) string {
	unit, div := "bytes", 1.0
	switch {
	case n >= 1<<20:
		unit, div = "MB", 1<<20
	case n >= 1<<10:
		unit, div = "KB", 1<<10
	}
	v := strconv.FormatFloat(float64(n)/div, 'f', 1, 64)
	return strings.TrimSuffix(v, ".0") + " " + unit
}
