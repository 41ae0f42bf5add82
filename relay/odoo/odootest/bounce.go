package odootest

import (
	"bufio"
	"bytes"
	"io"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // the charsets a DSN's text may use

	"github.com/mjrelay/mjrelay/relay/odoo/xmlrpc"
)

// msgidRe is Odoo's tools.mail_header_msgid_re.
var msgidRe = regexp.MustCompile(`<[^<>]+>`)

// messageProcess is mail.thread message_process(model, message) as far as
// bounces go: it answers False whatever happens (a bounce routes nowhere)
// and records whether Odoo would have counted it.
func (s *Server) messageProcess(args []any, kw map[string]any) (any, *xmlrpc.Fault) {
	if len(args) != 2 || len(kw) != 0 {
		return nil, &xmlrpc.Fault{Code: 1, String: "TypeError: the relay calls message_process(False, Binary(raw)) with no keyword arguments"}
	}
	if m, ok := args[0].(bool); !ok || m {
		return nil, &xmlrpc.Fault{Code: 1, String: "the model must be False, as odoo-mailgate passes it"}
	}
	raw, ok := args[1].([]byte)
	if !ok {
		return nil, &xmlrpc.Fault{Code: 1, String: "TypeError: the message must be an xmlrpc Binary"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, why := s.readBounce(raw)
	if why != "" {
		s.rejected = append(s.rejected, Rejection{Why: why, Raw: raw})
		return false, nil
	}
	s.seenDSN[b.MessageID]++
	s.bounces = append(s.bounces, b)
	return false, nil
}

// readBounce applies Odoo's rules (s.mu held): the Bounce, or why Odoo
// would not count it.
func (s *Server) readBounce(raw []byte) (Bounce, string) {
	b := Bounce{Raw: raw}
	top, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return b, "unreadable message: " + err.Error()
	}
	b.MessageID = strings.TrimSpace(top.Header.Get("Message-Id"))
	if b.MessageID == "" {
		return b, "no Message-Id (Odoo would make one up, and the sender could not be told apart from a retry)"
	}
	for _, h := range []string{"Message-Id", "X-Odoo-Message-Id"} {
		for _, id := range msgidRe.FindAllString(top.Header.Get(h), -1) {
			if s.messages[id] {
				return b, "ignored: its " + h + " " + id + " is an existing mail.message (found duplicated Message-Id during processing)"
			}
		}
	}
	if !s.detected(top) {
		return b, "not detected as a bounce: no bounce alias in To, From is not MAILER-DAEMON, not multipart/report"
	}
	var dsn, orig, text []byte
	var haveDSN, haveOrig, haveText bool
	walkErr := top.Walk(func(_ []int, e *message.Entity, err error) error {
		if err != nil {
			return err
		}
		ct, _, _ := e.Header.ContentType()
		switch {
		case ct == "message/delivery-status" && !haveDSN:
			dsn, haveDSN = readAll(e.Body), true
		case (ct == "message/rfc822" || ct == "text/rfc822-headers") && !haveOrig:
			orig, haveOrig = readAll(e.Body), true
		case ct == "text/plain" && !haveText:
			text, haveText = readAll(e.Body), true
		}
		return nil
	})
	if walkErr != nil {
		return b, "unreadable MIME structure: " + walkErr.Error()
	}
	if !haveDSN {
		return b, "no message/delivery-status part"
	}
	blocks := dsnBlocks(dsn)
	if len(blocks) < 2 {
		return b, "the delivery-status part needs a per-message block and a per-recipient block after a blank line"
	}
	final := blocks[1].Get("Final-Recipient")
	_, addr, found := strings.Cut(final, ";")
	if !found {
		return b, "Final-Recipient " + final + " has no ';' (Odoo reads the address after it)"
	}
	if b.Recipient = normalize(addr); b.Recipient == "" {
		return b, "Final-Recipient " + final + " holds no address"
	}
	b.Status, b.Diagnostic = blocks[1].Get("Status"), blocks[1].Get("Diagnostic-Code")
	if !haveOrig {
		return b, "no message/rfc822 or text/rfc822-headers part: the original cannot be found"
	}
	oh, _ := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(orig), strings.NewReader("\r\n\r\n")))).ReadMIMEHeader()
	for _, h := range []string{"Message-Id", "X-Odoo-Message-Id"} {
		for _, id := range msgidRe.FindAllString(oh.Get(h), -1) {
			if s.messages[id] && b.Original == "" {
				b.Original = id
			}
		}
	}
	if b.Original == "" {
		return b, "the embedded headers' Message-Id " + oh.Get("Message-Id") + " is no known mail.message"
	}
	b.Explanation = strings.TrimSpace(string(text))
	if b.Explanation == "" {
		return b, "no text part: Odoo's failure reason would be empty"
	}
	return b, ""
}

// detected is mail.thread _detect_is_bounce.
func (s *Server) detected(top *message.Entity) bool {
	for _, h := range []string{"To", "Delivered-To"} {
		if list, err := mail.ParseAddressList(top.Header.Get(h)); err == nil {
			for _, a := range list {
				if s.alias != "" && strings.EqualFold(a.Address, s.alias) {
					return true
				}
			}
		}
	}
	if list, err := mail.ParseAddressList(top.Header.Get("From")); err == nil && len(list) > 0 {
		local, _, _ := strings.Cut(list[0].Address, "@")
		if strings.EqualFold(local, "mailer-daemon") {
			return true
		}
	}
	ct, params, _ := top.Header.ContentType()
	return ct == "multipart/report" || params["report-type"] == "delivery-status"
}

// dsnBlocks splits a delivery-status body into its header blocks, as
// Python's email parser does (blank lines separate them).
func dsnBlocks(body []byte) []textproto.MIMEHeader {
	body = bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
	var out []textproto.MIMEHeader
	for _, blk := range bytes.Split(body, []byte("\n\n")) {
		blk = bytes.Trim(blk, "\n")
		if len(blk) == 0 {
			continue
		}
		h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(blk, "\n\n"...)))).ReadMIMEHeader()
		if err != nil {
			continue
		}
		out = append(out, h)
	}
	return out
}

// normalize is Odoo's email_normalize for one address.
func normalize(s string) string {
	s = strings.TrimSpace(s)
	if a, err := mail.ParseAddress(s); err == nil {
		s = a.Address
	}
	if !strings.Contains(s, "@") || strings.ContainsAny(s, " <>") {
		return ""
	}
	return strings.ToLower(s)
}

func readAll(r io.Reader) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, 16<<20))
	return b
}
