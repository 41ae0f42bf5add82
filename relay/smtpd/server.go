// Package smtpd is the SMTP side of mjrelay: the listeners Odoo connects to
// (plain with STARTTLS, and implicit TLS), AUTH PLAIN/LOGIN, address
// syntax, the size limit and the reading of the data. What is accepted,
// and how, is the intake's to decide (relay/intake); the session turns
// its refusals into replies and records them as sent.
package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/relay/authlimit"
	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Options are the SMTP server's settings.
type Options struct {
	// Hostname is the server's name in the greeting and replies.
	Hostname string
	// Listen (plain, STARTTLS offered) and ListenTLS (implicit TLS) are
	// the listeners' host:port; "" = none.
	Listen, ListenTLS string
	// TLSCert and TLSKey are PEM files; without them a self-signed
	// certificate is generated once in TLSDir.
	TLSCert, TLSKey, TLSDir string
	MaxMessageSize          int64
	MaxRecipients           int
	// AllowInsecureAuth allows AUTH without TLS from any address (always
	// allowed over TLS and from loopback).
	AllowInsecureAuth bool
	// Trusted are the networks whose clients may send without AUTH.
	Trusted []netip.Prefix
	// ProxyFrom are the load balancers whose connections start with a
	// PROXY protocol header naming the client (see proxy.go);
	// ProxyHeaderTimeout bounds the wait for it (default 10 s).
	ProxyFrom          []netip.Prefix
	ProxyHeaderTimeout time.Duration
	MaxConnections     int
	ReadTimeout        time.Duration
	DataTimeout        time.Duration
	Users              []User
}

// User is one SMTP login.
type User struct {
	Username string
	// PasswordHash is the bcrypt hash of its password; it is only ever
	// compared with, never logged.
	PasswordHash string
}

// Intake decides what is accepted (an *intake.Intake).
type Intake interface {
	CheckSender(ctx context.Context, s intake.Sender) (pending bool, r *intake.Refusal)
	Accept(ctx context.Context, sub intake.Submission) (intake.Receipt, *intake.Refusal)
}

// Deps are the parts the SMTP server talks to.
type Deps struct {
	Intake Intake
	// Traffic records what the server refuses or sees aborted (the
	// intake records what it accepts).
	Traffic trafficlog.Recorder
	Logger  *slog.Logger
	// TLS is the listeners' TLS configuration; nil: the certificate of
	// Options (LoadCertificate), read again by Apply.
	TLS *tls.Config
	// Listen binds the listener named name ("smtp": plain with STARTTLS,
	// "smtps": implicit TLS) at addr; nil: net.Listen. The relay passes
	// listeners inherited from a former process or from systemd here.
	Listen func(name, addr string) (net.Listener, error)
	// Guesses bounds failed logins per client address (nil:
	// authlimit.Defaults).
	Guesses *authlimit.Limiter
}

// Server serves SMTP on the configured listeners.
type Server struct {
	// opts are the options of New: the listeners, the host name, the size
	// limit, max_connections and read_timeout stay these; Apply changes
	// the rest (live).
	opts    Options
	live    atomic.Pointer[Options]
	users   atomic.Pointer[users]
	in      atomic.Pointer[intakeRef]
	cert    atomic.Pointer[tls.Certificate] // nil when Deps.TLS was given
	listen  func(name, addr string) (net.Listener, error)
	traffic trafficlog.Recorder
	log     *slog.Logger
	guesses *authlimit.Limiter
	tlsConf *tls.Config
	slots   chan struct{} // connection slots shared by both listeners
	open    *conns
	bufs    sync.Pool
	maxLine int
	// logs and refusals aggregate log lines and refusal records that
	// come in floods (clients dropping connections, a full queue).
	logs     *burst[logLine]
	refusals *burst[trafficlog.Event]

	plain, implicit *smtp.Server
	addrs           []net.Addr
}

// New builds a server; Listen binds it.
func New(o Options, d Deps) (*Server, error) {
	if d.Intake == nil {
		return nil, errors.New("smtpd: no intake")
	}
	s := &Server{
		opts: o, traffic: d.Traffic, log: d.Logger, listen: d.Listen, guesses: d.Guesses,
		tlsConf: d.TLS, slots: make(chan struct{}, max(o.MaxConnections, 1)), open: newConns(),
	}
	s.live.Store(&o)
	s.users.Store(newUsers(o.Users))
	s.SetIntake(d.Intake)
	if s.listen == nil {
		s.listen = func(_, addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	if s.traffic == nil {
		s.traffic = trafficlog.Discard{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.guesses == nil {
		s.guesses = authlimit.New(authlimit.Defaults)
	}
	s.logs = newBurst(floodInterval, s.logLine)
	s.refusals = newBurst(floodInterval, func(e trafficlog.Event, n int) {
		if n > 1 {
			e.Count = n
		}
		s.traffic.Record(e)
	})
	if s.tlsConf == nil {
		cert, err := LoadCertificate(o, s.log)
		if err != nil {
			return nil, err
		}
		s.cert.Store(cert)
		s.tlsConf = &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil }}
	}
	s.plain = s.newSMTPServer()
	s.plain.TLSConfig = s.tlsConf
	s.implicit = s.newSMTPServer()
	return s, nil
}

func (s *Server) newSMTPServer() *smtp.Server {
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = s.opts.Hostname
	// The session checks sizes itself (exactly, and with a reply that
	// says what to change); go-smtp only announces the limit.
	srv.AdvertisedMaxMessageBytes = s.opts.MaxMessageSize
	// Every RCPT reaches the session, which accepts it (see rcpts): no
	// limit here, and a path that does not parse is the session's to judge.
	srv.MaxRecipients = 0
	srv.AcceptMalformedRcpt = true
	srv.ReadTimeout = s.opts.ReadTimeout
	srv.WriteTimeout = time.Minute
	// AUTH without TLS is decided per connection (loopback, or
	// allow_insecure_auth) by session.AuthMechanisms.
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = slogErrorLog{s}
	s.maxLine = srv.MaxLineLength
	return srv
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{srv: s, conn: c, client: c.Conn().RemoteAddr().String(), slot: slotOf(c.Conn())}
	if ap, err := netip.ParseAddrPort(sess.client); err == nil {
		sess.ip = ap.Addr().Unmap()
	}
	for _, p := range s.settings().Trusted {
		if p.Contains(sess.ip) {
			sess.trusted = true
		}
	}
	return sess, nil
}

// Listen binds smtp.listen and smtp.listen_tls (when set), then serves
// them: a start that fails to bind one accepts no connection on the other.
func (s *Server) Listen() error {
	var plain, implicit net.Listener
	if a := s.opts.Listen; a != "" {
		l, err := s.listen("smtp", a)
		if err != nil {
			return err
		}
		plain = l
	}
	if a := s.opts.ListenTLS; a != "" {
		l, err := s.listen("smtps", a)
		if err != nil {
			if plain != nil {
				plain.Close()
			}
			return err
		}
		implicit = l
	}
	if plain != nil {
		s.addrs = append(s.addrs, plain.Addr())
		go s.Serve(plain)
	}
	if implicit != nil {
		s.addrs = append(s.addrs, implicit.Addr())
		go s.implicit.Serve(tls.NewListener(&limitListener{Listener: implicit, slots: s.slots, open: s.open, warn: s.warn, wrap: s.wrapTLSPort()}, s.tlsConf))
	}
	return nil
}

// Serve serves plain SMTP (STARTTLS offered) on l until it is closed; Listen
// uses it, and tests hand it their own listener.
func (s *Server) Serve(l net.Listener) error {
	return s.plain.Serve(&limitListener{Listener: l, slots: s.slots, open: s.open, warn: s.warn, wrap: s.proxyWrap(true),
		greet: []byte("421 4.7.0 " + s.opts.Hostname + " Too many connections, try again later\r\n")})
}

// Addrs are the bound addresses: plain first (if configured), then TLS.
func (s *Server) Addrs() []net.Addr { return s.addrs }

// intakeRef holds the intake for an atomic swap.
type intakeRef struct{ Intake }

// SetIntake makes in decide for the transactions that start from now on
// (a reload builds a new intake with the new sender policy).
func (s *Server) SetIntake(in Intake) { s.in.Store(&intakeRef{in}) }

func (s *Server) intake() Intake { return s.in.Load().Intake }

// settings are the options sessions read as they go.
func (s *Server) settings() *Options { return s.live.Load() }

// Apply changes, without closing a listener or a session, the settings
// sessions read as they go: the logins, the trusted networks,
// AllowInsecureAuth, MaxRecipients, DataTimeout, the PROXY protocol's
// addresses (ProxyFrom, ProxyHeaderTimeout: for new connections), and the certificate,
// read again from its files (new connections get the new one; open ones
// keep theirs). The other options stay those of New (they take a restart).
// On error nothing changed.
func (s *Server) Apply(o Options) error {
	var cert *tls.Certificate
	if s.cert.Load() != nil {
		var err error
		if cert, err = LoadCertificate(o, s.log); err != nil {
			return err
		}
	}
	if !slices.Equal(s.settings().Users, o.Users) {
		s.users.Store(newUsers(o.Users)) // logins verified so far are checked again once
	}
	if cert != nil {
		s.cert.Store(cert)
	}
	s.live.Store(&o)
	return nil
}

// Shutdown stops accepting, lets sessions finish until ctx ends, then closes
// what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	var errs [2]error
	for i, srv := range []*smtp.Server{s.plain, s.implicit} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
				errs[i] = err
				srv.Close()
			}
		}()
	}
	wg.Wait()
	s.logs.flush()
	s.refusals.flush()
	return errors.Join(errs[:]...)
}

const maxPooledBuf = 1 << 20

func (s *Server) getBuf() *bytes.Buffer {
	if b, ok := s.bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return bytes.NewBuffer(make([]byte, 0, 64<<10))
}

func (s *Server) putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuf {
		b.Reset()
		s.bufs.Put(b)
	}
}

// limitListener caps concurrent connections. When all slots are taken, the
// connection that has made no progress for longest is closed to make room
// (see conns); only if every connection is in a transaction does a new
// plain client get a 421 greeting (never a 421 mid-session).
type limitListener struct {
	net.Listener
	slots chan struct{}
	open  *conns
	greet []byte
	warn  func(kind, msg string, args ...any)
	// wrap, if set, wraps each accepted connection (the PROXY protocol).
	wrap func(*slotConn) net.Conn
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.take() {
			sc := &slotConn{Conn: c, open: l.open, release: func() { <-l.slots }}
			l.open.add(sc)
			if l.wrap != nil {
				return l.wrap(sc), nil
			}
			return sc, nil
		}
		l.warn("slots full", "connection refused: every connection slot is in a transaction", "client", c.RemoteAddr().String(), "max_connections", cap(l.slots))
		if l.greet != nil {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(l.greet)
		}
		c.Close()
	}
}

// take gets a slot, evicting idle connections while none is free.
func (l *limitListener) take() bool {
	for tries := 0; tries < 3; tries++ {
		select {
		case l.slots <- struct{}{}:
			return true
		default:
		}
		if !l.open.evict() {
			return false
		}
		select {
		case l.slots <- struct{}{}:
			return true
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

type slotConn struct {
	net.Conn
	open       *conns
	once       sync.Once
	release    func()
	readClosed atomic.Bool
}

// Read returns EOF once the session is to end (see closeRead), whatever the
// client still sends.
func (c *slotConn) Read(b []byte) (int, error) {
	if c.readClosed.Load() {
		return 0, io.EOF
	}
	return c.Conn.Read(b)
}

func (c *slotConn) Close() error {
	c.once.Do(func() { c.open.remove(c); c.release() })
	return c.Conn.Close()
}
