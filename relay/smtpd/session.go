package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// session is one client's SMTP conversation from EHLO on (go-smtp makes a
// new one after STARTTLS).
type session struct {
	srv     *Server
	conn    *smtp.Conn
	ip      netip.Addr
	client  string // ip:port
	trusted bool
	fails   int // failed AUTH on this connection (a repeated guess once)

	user  *config.User
	from  string
	utf8  bool
	size  int64 // the client's SIZE= announcement, if any
	rcpts []string
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

// event fills the connection's fields into a traffic event.
func (s *session) event(kind string) trafficlog.Event {
	return trafficlog.Event{
		Event: kind, Client: s.client, User: s.login(), Helo: s.conn.Hostname(), TLS: s.tls(),
		From: s.from, To: s.rcpts,
	}
}

// refuse records a refusal and returns it as the SMTP reply. The error is
// returned unwrapped so that go-smtp keeps its code.
func (s *session) refuse(stage string, code int, enh smtp.EnhancedCode, reason, msg string) *smtp.SMTPError {
	e := s.event(trafficlog.Refused)
	e.Stage, e.Reason = stage, reason
	return s.record(e, code, enh, msg)
}

// record records the refused event e with its reply, the line go-smtp
// writes for the returned error, so that the record says what the client
// was told. Refusals that come in floods are aggregated (see burst): the
// client still gets its reply each time.
func (s *session) record(e trafficlog.Event, code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	e.Reply = fmt.Sprintf("%d %d.%d.%d %s", code, enh[0], enh[1], enh[2], msg)
	if floods(e.Reason) {
		s.srv.refusals.add(e.Stage+" "+e.Reason, e)
	} else {
		s.srv.traffic.Record(e)
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

// floods tells the refusals that come by the thousand a minute while their
// cause lasts, and are recorded as one per floodInterval with a count:
// refusals for want of space (each record would take more of it) and
// logins refused from an address that guesses passwords.
func floods(reason string) bool {
	return reason == "queue_full" || reason == "auth_throttled"
}

// tooLarge refuses a message of size bytes, over smtp.max_message_size, at
// stage; e is its event so far.
func (s *session) tooLarge(e trafficlog.Event, stage string, size int64) *smtp.SMTPError {
	e.Stage, e.Reason, e.Size = stage, "message_too_large", size
	return s.record(e, 552, smtp.EnhancedCode{5, 3, 4}, tooLargeText(size, s.srv.cfg.SMTP.MaxMessageSize))
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.from, s.utf8, s.rcpts = "", false, nil
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
	if opts != nil && opts.Size > s.srv.cfg.SMTP.MaxMessageSize {
		e := s.event(trafficlog.Refused)
		e.From = from
		return s.tooLarge(e, "mail", opts.Size)
	}
	if err := s.srv.queue.Admit(opts.Size); err != nil {
		return s.refuse("mail", 452, smtp.EnhancedCode{4, 3, 1}, "queue_full",
			"Insufficient system storage: the relay's queue is full, try again later")
	}
	ctx, cancel := context.WithTimeout(context.Background(), policyTimeout)
	defer cancel()
	if v := s.srv.policy.CheckEnvelope(ctx, s.login(), from); !v.Allow {
		s.from = from
		defer func() { s.from = "" }()
		return s.refusePolicy("mail", v)
	} else {
		s.warn(v, from)
	}
	s.from = from
	s.utf8 = opts != nil && opts.UTF8
	if opts != nil {
		s.size = opts.Size
	}
	s.srv.open.touch(s.client, true)
	return nil
}

const policyTimeout = 20 * time.Second

func (s *session) refusePolicy(stage string, v policy.Verdict) *smtp.SMTPError {
	code, enh := v.Code, smtp.EnhancedCode(v.Enhanced)
	if code == 0 {
		code, enh = 550, smtp.EnhancedCode{5, 7, 1}
	}
	return s.refuse(stage, code, enh, v.Reason, v.Message)
}

func (s *session) warn(v policy.Verdict, from string) {
	for _, w := range v.Warnings {
		s.srv.log.Warn("sender policy", "warning", w, "from", from, "user", s.login(), "client", s.client)
	}
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := checkAddress(to); err != nil {
		return s.refuse("rcpt", 501, smtp.EnhancedCode{5, 1, 3}, "bad_recipient_syntax", "Bad recipient address syntax: "+err.Error())
	}
	for _, r := range s.rcpts {
		if strings.EqualFold(r, to) {
			return nil
		}
	}
	if len(s.rcpts) >= s.srv.cfg.SMTP.MaxRecipients {
		return s.refuse("rcpt", 452, smtp.EnhancedCode{4, 5, 3}, "too_many_recipients",
			fmt.Sprintf("Too many recipients: at most %d per message", s.srv.cfg.SMTP.MaxRecipients))
	}
	s.rcpts = append(s.rcpts, to)
	s.srv.open.touch(s.client, true)
	return nil
}

func (s *session) Data(r io.Reader) error {
	defer s.srv.open.touch(s.client, false)
	// The go-smtp read deadline was set for the DATA command line; give the
	// whole body data_timeout from here.
	s.conn.Conn().SetReadDeadline(time.Now().Add(s.srv.cfg.SMTP.DataTimeout.D()))
	buf := s.srv.getBuf()
	defer s.srv.putBuf(buf)
	if s.size > int64(buf.Cap()) && s.size <= s.srv.cfg.SMTP.MaxMessageSize {
		// Odoo announces the size (size=N): one allocation instead of a
		// doubling series (and the copies in between).
		buf.Grow(int(s.size) + 4096 + traceRoom)
	}
	var room [traceRoom]byte // where the Received header goes (see framed)
	buf.Write(room[:])
	size, err := readBody(buf, r, s.srv.cfg.SMTP.MaxMessageSize)
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
		e := s.event(trafficlog.Aborted)
		e.Stage, e.Size = "data", int64(buf.Len()-traceRoom)
		e.Reason = "connection ended during DATA; nothing queued"
		if buf.Len() == traceRoom && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
			e.Reason = "client closed the connection after 354 (as Odoo's Test Connection does); nothing queued"
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			e.Reason = "timeout during DATA; nothing queued"
		}
		s.srv.traffic.Record(e)
		s.conn.Close()
		return err
	}
	if size > s.srv.cfg.SMTP.MaxMessageSize {
		info := parseHeader(buf.Bytes()[traceRoom:])
		e := s.event(trafficlog.Refused)
		e.HeaderFrom, e.Subject, e.MessageID = info.From, info.Subject, info.MessageID
		return s.tooLarge(e, "data", size)
	}
	msg, err := normalizeEOL(buf.Bytes()[traceRoom:])
	if err != nil {
		return s.refuse("data", 550, smtp.EnhancedCode{5, 6, 0}, "bare_cr",
			"Message refused: it contains a bare CR (carriage return not followed by line feed); lines must end with CRLF")
	}
	info := parseHeader(msg)
	ctx, cancel := context.WithTimeout(context.Background(), policyTimeout)
	defer cancel()
	v := s.srv.policy.CheckMessage(ctx, s.login(), s.from, info.From)
	if !v.Allow {
		return s.refuseData(v, info, int64(len(msg)))
	}
	s.warn(v, info.From)

	now := time.Now()
	cl := s.srv.classes.Classify(s.login(), policy.Facts{HeaderFrom: info.From, ListUnsubscribePost: info.ListUnsubscribePost,
		Precedence: info.Precedence, MailjetPrio: info.MailjetPrio})
	env := &queue.Envelope{
		ID: s.srv.queue.NewID(), Received: now, From: s.from, To: append([]string(nil), s.rcpts...),
		User: s.login(), Client: s.client, Helo: s.conn.Hostname(), UTF8: s.utf8 || !isASCII(s.from, s.rcpts),
		HeaderFrom: info.From, Subject: info.Subject, MessageID: info.MessageID,
		Class: cl.Class, ClassRule: cl.Rule,
	}
	if s.srv.cfg.Mailjet.CampaignFromMailing {
		env.Campaign = policy.MailingCampaign(info.ListUnsubscribe)
	}
	if s.srv.flow != nil {
		// Bounded by flow_delay; not by ctx, which Put still needs.
		s.srv.flow.Pace(context.Background(), env.Class)
	}
	trace := receivedHeader(s.conn.Hostname(), s.ip.String(), s.srv.cfg.Hostname, env.ID, s.tls(), s.user != nil, env.UTF8, env.To, now)
	raw, shared := framed(buf.Bytes(), msg, trace)
	if err := s.srv.queue.Put(ctx, env, raw); err != nil {
		if errors.Is(err, queue.ErrFull) {
			return s.refuse("data", 452, smtp.EnhancedCode{4, 3, 1}, "queue_full",
				"Insufficient system storage: the relay's queue is full, try again later")
		}
		s.srv.log.Error("cannot store message", "err", err, "client", s.client)
		return s.refuse("data", 451, smtp.EnhancedCode{4, 3, 0}, "spool_error",
			"Temporary local problem storing the message, try again later")
	}
	e := s.event(trafficlog.Received)
	e.ID, e.HeaderFrom, e.Subject, e.MessageID, e.Size = env.ID, env.HeaderFrom, env.Subject, env.MessageID, env.Size
	e.To, e.Class, e.ClassRule, e.Verdict = env.To, env.Class, env.ClassRule, v.Reason
	if s.srv.bodies {
		e.Raw = raw
		if shared && buf.Cap() <= maxPooledBuf {
			e.Raw = bytes.Clone(raw) // the buffer goes back to the pool
		}
	}
	s.srv.traffic.Record(e)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK queued as " + env.ID}
}

func (s *session) refuseData(v policy.Verdict, info headerInfo, size int64) *smtp.SMTPError {
	code, enh := v.Code, smtp.EnhancedCode(v.Enhanced)
	if code == 0 {
		code, enh = 550, smtp.EnhancedCode{5, 7, 1}
	}
	e := s.event(trafficlog.Refused)
	e.Stage, e.Reason, e.HeaderFrom, e.Subject, e.MessageID, e.Size = "data", v.Reason, info.From, info.Subject, info.MessageID, size
	return s.record(e, code, enh, v.Message)
}

func (s *session) Reset() {
	s.from, s.utf8, s.size, s.rcpts = "", false, 0, nil
	s.srv.open.idle(s.client)
}

func (s *session) Logout() error { return nil }

// closeRead ends the reading side of a connection, so that what is being
// written still goes out but the next command read ends the session.
func closeRead(c net.Conn) {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	if sc, ok := c.(*slotConn); ok {
		sc.readClosed.Store(true)
		return
	}
	c.Close()
}

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
