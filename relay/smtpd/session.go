package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// session is one client's SMTP conversation from EHLO on (go-smtp makes a
// new one after STARTTLS).
type session struct {
	srv     *Server
	conn    *smtp.Conn
	ip      netip.Addr
	client  string // ip:port (the real client's, behind a PROXY header)
	slot    *slotConn
	trusted bool
	fails   int // failed AUTH on this connection (a repeated guess once)

	user *User
	from string
	// senderPending: the intake could not check the sender at MAIL
	// (intake.Submission.SenderPending).
	senderPending bool
	utf8          bool
	size          int64 // the client's SIZE= announcement, if any
	rcpts         rcpts
}

func (s *session) tls() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

func (s *session) login() string {
	if s.user == nil {
		return ""
	}
	return s.user.Username
}

// connection is what events about this client's transaction start from.
func (s *session) connection() trafficlog.Conn {
	return trafficlog.Conn{Client: s.client, User: s.login(), Helo: s.conn.Hostname(), TLS: s.tls(), From: s.from, To: s.rcpts.all()}
}

// refuse records a refusal the session decides and returns it as the
// SMTP reply.
func (s *session) refuse(stage string, code int, enh smtp.EnhancedCode, reason, msg string) *smtp.SMTPError {
	return s.refusal(&intake.Refusal{Code: code, Enhanced: enh, Text: msg, Stage: stage, Reason: reason, From: s.from})
}

// refusal records r, with what it is about, and returns it as the SMTP
// reply.
func (s *session) refusal(r *intake.Refusal) *smtp.SMTPError {
	c := s.connection()
	c.From = r.From
	return s.record(trafficlog.NewRefused(c, trafficlog.Refusal{Stage: r.Stage, Reason: r.Reason, Size: r.Size,
		HeaderFrom: r.Header.From, Subject: r.Header.Subject, MessageID: r.Header.MessageID}), r)
}

// record records the refused event e with r's reply, the line go-smtp
// writes for the returned error, so that the record says what the client
// was told. Refusals that come in floods are aggregated (see burst): the
// client still gets its reply each time. The error is returned unwrapped
// so that go-smtp keeps its code.
func (s *session) record(e trafficlog.Event, r *intake.Refusal) *smtp.SMTPError {
	e.Reply = r.Reply()
	if floods(e.Reason) {
		s.srv.refusals.add(e.Stage+" "+e.Reason, e)
	} else {
		s.srv.traffic.Record(e)
	}
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Text}
}

// floods tells the refusals that come by the thousand a minute while their
// cause lasts, and are recorded as one per floodInterval with a count:
// refusals for want of space (each record would take more of it) and
// logins refused from an address that guesses passwords.
func floods(reason string) bool {
	return reason == "queue_full" || reason == "auth_throttled"
}

// tooLarge refuses a message of size bytes from from, over
// smtp.max_message_size, at stage; h is what was read of its header.
func (s *session) tooLarge(stage, from string, h intake.Header, size int64) *smtp.SMTPError {
	return s.refusal(&intake.Refusal{Code: 552, Enhanced: [3]int{5, 3, 4}, Text: tooLargeText(size, s.srv.opts.MaxMessageSize),
		Stage: stage, Reason: "message_too_large", From: from, Header: h, Size: size})
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.from, s.senderPending, s.utf8, s.rcpts = "", false, false, rcpts{}
	if s.user == nil && !s.trusted {
		return s.refuse("mail", 530, smtp.EnhancedCode{5, 7, 0}, "auth_required",
			"Authentication required: set the username and password of an mjrelay user in Odoo's outgoing mail server")
	}
	if from == "" {
		return s.refuse("mail", 550, smtp.EnhancedCode{5, 7, 1}, "null_sender",
			"The null sender <> cannot be relayed to Mailjet")
	}
	if err := checkAddress(from); err != nil {
		return s.refuse("mail", 501, smtp.EnhancedCode{5, 1, 7}, "bad_sender_syntax", "Bad sender address syntax: "+err.Error())
	}
	if opts != nil && opts.Size > s.srv.opts.MaxMessageSize {
		return s.tooLarge("mail", from, intake.Header{}, opts.Size)
	}
	pending, r := s.srv.intake().CheckSender(context.Background(), intake.Sender{Login: s.login(), Client: s.client, From: from, Size: opts.Size})
	if r != nil {
		return s.refusal(r)
	}
	s.from, s.senderPending = from, pending
	s.utf8 = opts != nil && opts.UTF8
	if opts != nil {
		s.size = opts.Size
	}
	s.srv.open.touch(s.slot, true)
	return nil
}

// Rcpt accepts every recipient: one the relay would refuse is kept aside
// and the whole message refused at the end of DATA (see rcpts).
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	var malformed error
	if opts != nil {
		malformed = opts.Malformed
	}
	s.rcpts.add(to, malformed, s.srv.settings().MaxRecipients)
	s.srv.open.touch(s.slot, true)
	return nil
}

func (s *session) Data(r io.Reader) error {
	defer s.srv.open.touch(s.slot, false)
	// The go-smtp read deadline was set for the DATA command line; give the
	// whole body data_timeout from here.
	s.conn.Conn().SetReadDeadline(time.Now().Add(s.srv.settings().DataTimeout))
	buf := s.srv.getBuf()
	defer s.srv.putBuf(buf)
	if s.size > int64(buf.Cap()) && s.size <= s.srv.opts.MaxMessageSize {
		// Odoo announces the size (size=N): one allocation instead of a
		// doubling series (and the copies in between).
		buf.Grow(int(s.size) + 4096 + intake.TraceRoom)
	}
	var room [intake.TraceRoom]byte // where the intake writes the Received header
	buf.Write(room[:])
	size, err := readBody(buf, r, s.srv.opts.MaxMessageSize)
	if err != nil {
		if errors.Is(err, smtp.ErrTooLongLine) {
			// Answer, then end the connection: the rest of the line must
			// not be read as commands. The past read deadline makes
			// go-smtp's drain stop at once and its next read end the
			// session.
			s.conn.Conn().SetReadDeadline(time.Now().Add(-time.Second))
			return s.refuse("data", 500, smtp.EnhancedCode{5, 5, 6}, "line_too_long",
				fmt.Sprintf("Line too long: lines must be at most %d bytes (RFC 5322 allows 998)", s.srv.maxLine))
		}
		// The client went away or stalled: nothing is queued, and the
		// connection must end here (go-smtp#196: it would read the rest of
		// the body as commands).
		reason := "connection ended during DATA; nothing queued"
		if buf.Len() == intake.TraceRoom && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
			reason = "client closed the connection after 354 (as Odoo's Test Connection does); nothing queued"
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			reason = "timeout during DATA; nothing queued"
		}
		s.srv.traffic.Record(trafficlog.NewAborted(s.connection(), "data", reason, int64(buf.Len()-intake.TraceRoom)))
		s.conn.Close()
		return err
	}
	if r := s.rcpts.refusal(s.srv.settings().MaxRecipients); r != nil {
		r.From, r.Header, r.Size = s.from, intake.ParseHeader(buf.Bytes()[intake.TraceRoom:]), size
		return s.refusal(r)
	}
	if size > s.srv.opts.MaxMessageSize {
		return s.tooLarge("data", s.from, intake.ParseHeader(buf.Bytes()[intake.TraceRoom:]), size)
	}
	msg, err := normalizeEOL(buf.Bytes()[intake.TraceRoom:])
	if err != nil {
		return s.refuse("data", 550, smtp.EnhancedCode{5, 6, 0}, "bare_cr",
			"Message refused: it contains a bare CR (carriage return not followed by line feed); lines must end with CRLF")
	}
	rec, refused := s.srv.intake().Accept(context.Background(), intake.Submission{
		Login: s.login(), Client: s.client, IP: s.ip.String(), Helo: s.conn.Hostname(), TLS: s.tls(), UTF8: s.utf8,
		From: s.from, To: s.rcpts.ok, Message: msg, Buffer: buf.Bytes(), Recycled: buf.Cap() <= maxPooledBuf,
		SenderPending: s.senderPending,
	})
	if refused != nil {
		return s.refusal(refused)
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK queued as " + rec.ID}
}

func (s *session) Reset() {
	s.from, s.senderPending, s.utf8, s.size, s.rcpts = "", false, false, 0, rcpts{}
	s.srv.open.idle(s.slot)
}

func (s *session) Logout() error { return nil }

// closeRead ends the reading side of a connection, so that what is being
// written still goes out but the next command read ends the session.
func closeRead(c net.Conn) {
	if sc := slotOf(c); sc != nil {
		sc.readClosed.Store(true)
		return
	}
	c.Close()
}

// checkAddress accepts what an SMTP submission relay should pass on to
// Mailjet: local@domain with a dotted host name or an address literal, no
// source-route tricks (%, !) in the local part, no control characters.
func checkAddress(a string) error {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 {
		return errors.New("expected local-part@domain")
	}
	local, domain := a[:at], a[at+1:]
	if len(local) > 64 || len(domain) > 255 {
		return errors.New("address too long")
	}
	if strings.ContainsAny(local, "%!") && !strings.HasPrefix(local, `"`) {
		return errors.New("routing characters (% or !) in the local part are not relayed")
	}
	if strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' && !strings.HasPrefix(local, `"`) }) {
		return errors.New("control characters or spaces in the address")
	}
	if strings.HasPrefix(domain, "[") {
		if !strings.HasSuffix(domain, "]") {
			return errors.New("malformed address literal")
		}
		lit := strings.TrimPrefix(domain[1:len(domain)-1], "IPv6:")
		if _, err := netip.ParseAddr(lit); err != nil {
			return errors.New("malformed address literal")
		}
		return nil
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("%q is not a valid domain", domain)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r >= 0x80) {
				return fmt.Errorf("%q is not a valid domain", domain)
			}
		}
	}
	if !strings.Contains(domain, ".") {
		return fmt.Errorf("%q is not a fully qualified domain", domain)
	}
	return nil
}

var _ smtp.AuthSession = (*session)(nil)
