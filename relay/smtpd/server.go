// Package smtpd is the SMTP side of mjrelay: the listeners Odoo connects to
// (plain with STARTTLS, and implicit TLS), AUTH PLAIN/LOGIN, and the session
// that checks each message, stores it durably and only then answers 250.
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/authlimit"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Queue is where accepted messages go (a *spool.Spool).
type Queue interface {
	NewID() string
	Admit(size int64) error
	Put(ctx context.Context, env *queue.Envelope, parts ...[]byte) error
}

// Deps are the parts the SMTP server talks to.
type Deps struct {
	Queue   Queue
	Policy  policy.Checker // nil: allow all
	Traffic trafficlog.Recorder
	Logger  *slog.Logger
	TLS     *tls.Config // nil: LoadTLS(cfg)
	// Classifier picks each message's lane (nil: all transactional).
	Classifier Classifier
	// WantBodies makes received events carry a copy of the stored message.
	WantBodies bool
	// Flow paces intake by lane (a *deliver.Scheduler); nil: never.
	Flow Flow
	// Guesses bounds failed logins per client address (nil:
	// authlimit.Defaults).
	Guesses *authlimit.Limiter
}

// Flow holds back a new message of a class whose lane is far behind; it
// returns how long it waited.
type Flow interface {
	Pace(ctx context.Context, class string) time.Duration
}

// Classifier picks a message's delivery lane (a *policy.Classifier).
type Classifier interface {
	Classify(login string, f policy.Facts) policy.Classification
}

// Server serves SMTP on the configured listeners.
type Server struct {
	cfg     *config.Config
	queue   Queue
	policy  policy.Checker
	traffic trafficlog.Recorder
	log     *slog.Logger
	users   *users
	guesses *authlimit.Limiter
	trusted []netip.Prefix
	tlsConf *tls.Config
	classes Classifier
	bodies  bool
	flow    Flow
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
func New(cfg *config.Config, d Deps) (*Server, error) {
	s := &Server{
		cfg: cfg, queue: d.Queue, policy: d.Policy, traffic: d.Traffic, log: d.Logger,
		users: newUsers(cfg.SMTP.Users), guesses: d.Guesses, trusted: cfg.TrustedPrefixes(),
		tlsConf: d.TLS, slots: make(chan struct{}, max(cfg.SMTP.MaxConnections, 1)),
		classes: d.Classifier, bodies: d.WantBodies, flow: d.Flow, open: newConns(),
	}
	if s.classes == nil {
		s.classes = policy.NewClassifier(&config.Config{}, nil)
	}
	if s.policy == nil {
		s.policy = policy.AllowAll{}
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
		var err error
		if s.tlsConf, err = LoadTLS(cfg, s.log); err != nil {
			return nil, err
		}
	}
	s.plain = s.newSMTPServer()
	s.plain.TLSConfig = s.tlsConf
	s.implicit = s.newSMTPServer()
	return s, nil
}

func (s *Server) newSMTPServer() *smtp.Server {
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = s.cfg.Hostname
	// The session checks sizes itself (exactly, and with a reply that
	// says what to change); go-smtp only announces the limit.
	srv.AdvertisedMaxMessageBytes = s.cfg.SMTP.MaxMessageSize
	srv.MaxRecipients = 0 // enforced (and logged) by the session
	srv.ReadTimeout = s.cfg.SMTP.ReadTimeout.D()
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
	sess := &session{srv: s, conn: c, client: c.Conn().RemoteAddr().String()}
	if ap, err := netip.ParseAddrPort(sess.client); err == nil {
		sess.ip = ap.Addr().Unmap()
	}
	for _, p := range s.trusted {
		if p.Contains(sess.ip) {
			sess.trusted = true
		}
	}
	return sess, nil
}

// Listen binds smtp.listen and smtp.listen_tls (when set).
func (s *Server) Listen() error {
	if a := s.cfg.SMTP.Listen; a != "" {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		s.addrs = append(s.addrs, l.Addr())
		go s.Serve(l)
	}
	if a := s.cfg.SMTP.ListenTLS; a != "" {
		l, err := net.Listen("tcp", a)
		if err != nil {
			s.plain.Close()
			return err
		}
		s.addrs = append(s.addrs, l.Addr())
		go s.implicit.Serve(tls.NewListener(&limitListener{Listener: l, slots: s.slots, open: s.open, warn: s.warn}, s.tlsConf))
	}
	return nil
}

// Serve serves plain SMTP (STARTTLS offered) on l until it is closed; Listen
// uses it, and tests hand it their own listener.
func (s *Server) Serve(l net.Listener) error {
	return s.plain.Serve(&limitListener{Listener: l, slots: s.slots, open: s.open, warn: s.warn,
		greet: []byte("421 4.7.0 " + s.cfg.Hostname + " Too many connections, try again later\r\n")})
}

// Addrs are the bound addresses: plain first (if configured), then TLS.
func (s *Server) Addrs() []net.Addr { return s.addrs }

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
