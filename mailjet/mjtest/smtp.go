package mjtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPMode is how the relay side secures connections.
type SMTPMode int

const (
	StartTLS    SMTPMode = iota // like port 587: plain, STARTTLS offered
	ImplicitTLS                 // like port 465
	NoTLS                       // a server that offers no STARTTLS (a downgrade)
)

// Received is one message the emulated relay accepted.
type Received struct {
	From      string
	Rcpts     []string
	Data      []byte
	QueueID   string
	TLS       bool
	User      string
	Reused    bool // not the first message on its connection
	MailOpts  smtp.MailOptions
	Connected time.Time
}

// Fault is an injected reply; the zero value means none.
type Fault struct {
	Code    int
	Enh     smtp.EnhancedCode
	Message string
}

func (f Fault) err() error {
	if f.Code == 0 {
		return nil
	}
	return &smtp.SMTPError{Code: f.Code, EnhancedCode: f.Enh, Message: f.Message}
}

// SMTPRelay emulates Mailjet's SMTP relay.
type SMTPRelay struct {
	APIKey, SecretKey string
	srv               *smtp.Server
	ln                net.Listener
	caPool            *x509.CertPool
	certDER           []byte

	mu         sync.Mutex
	received   []Received
	mailFault  Fault
	dataFault  Fault
	rcptFaults map[string]Fault
	failNext   int // the next n DATA commands get dataFault, then none
	dropAtData bool
	dataDelay  time.Duration
	conns      int
	authFails  int
	arrivals   chan struct{}
}

// NewSMTPRelay starts an emulated relay on 127.0.0.1 with a fresh
// certificate for 127.0.0.1/localhost; CAPool trusts it.
func NewSMTPRelay(apiKey, secretKey string, mode SMTPMode) (*SMTPRelay, error) {
	cert, pool, err := testCert()
	if err != nil {
		return nil, err
	}
	r := &SMTPRelay{APIKey: apiKey, SecretKey: secretKey, caPool: pool, certDER: cert.Certificate[0], rcptFaults: map[string]Fault{}, arrivals: make(chan struct{}, 1<<16)}
	r.srv = smtp.NewServer(smtp.BackendFunc(r.newSession))
	r.srv.Domain = "in-v3.mailjet.test"
	r.srv.MaxMessageBytes = 50 << 20
	r.srv.ReadTimeout, r.srv.WriteTimeout = time.Minute, time.Minute
	r.srv.AllowInsecureAuth = mode == NoTLS
	r.srv.EnableSMTPUTF8 = true
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if mode == ImplicitTLS {
		r.ln = tls.NewListener(ln, tlsConf)
	} else {
		r.ln = ln
		if mode == StartTLS {
			r.srv.TLSConfig = tlsConf
		}
	}
	go r.srv.Serve(r.ln)
	return r, nil
}

// Addr is host:port.
func (r *SMTPRelay) Addr() string { return r.ln.Addr().String() }

// Port is the listening port.
func (r *SMTPRelay) Port() int {
	_, p, _ := net.SplitHostPort(r.Addr())
	n, _ := strconv.Atoi(p)
	return n
}

// CertDER is the relay's certificate (DER), for a tls_ca_file.
func (r *SMTPRelay) CertDER() []byte { return r.certDER }

// CAPool trusts the relay's certificate.
func (r *SMTPRelay) CAPool() *x509.CertPool { return r.caPool }

// Close stops the relay.
func (r *SMTPRelay) Close() error { return r.srv.Close() }

// Received returns a copy of the accepted messages.
func (r *SMTPRelay) Received() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Received(nil), r.received...)
}

// Count is how many messages were accepted (cheaper than Received).
func (r *SMTPRelay) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.received)
}

// Arrivals receives a value per accepted message.
func (r *SMTPRelay) Arrivals() <-chan struct{} { return r.arrivals }

// Connections counts accepted connections that said EHLO.
func (r *SMTPRelay) Connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns
}

// SetMailFault makes every MAIL FROM fail with f (zero Fault: none).
func (r *SMTPRelay) SetMailFault(f Fault) { r.mu.Lock(); r.mailFault = f; r.mu.Unlock() }

// SetRcptFault makes RCPT TO:<rcpt> fail with f.
func (r *SMTPRelay) SetRcptFault(rcpt string, f Fault) {
	r.mu.Lock()
	r.rcptFaults[strings.ToLower(rcpt)] = f
	r.mu.Unlock()
}

// SetDataFault makes the next n messages fail at the end of DATA with f
// (n < 0: all of them until changed).
func (r *SMTPRelay) SetDataFault(f Fault, n int) {
	r.mu.Lock()
	r.dataFault, r.failNext = f, n
	r.mu.Unlock()
}

// SetDropAtData makes the relay close the connection instead of answering
// the end of DATA.
func (r *SMTPRelay) SetDropAtData(drop bool) { r.mu.Lock(); r.dropAtData = drop; r.mu.Unlock() }

// SetDataDelay delays the reply to the end of DATA.
func (r *SMTPRelay) SetDataDelay(d time.Duration) { r.mu.Lock(); r.dataDelay = d; r.mu.Unlock() }

// AuthFailures counts failed logins.
func (r *SMTPRelay) AuthFailures() int { r.mu.Lock(); defer r.mu.Unlock(); return r.authFails }

type relaySession struct {
	r     *SMTPRelay
	c     *smtp.Conn
	user  string
	from  string
	opts  smtp.MailOptions
	rcpts []string
	sent  int
	start time.Time
}

func (r *SMTPRelay) newSession(c *smtp.Conn) (smtp.Session, error) {
	r.mu.Lock()
	r.conns++
	r.mu.Unlock()
	return &relaySession{r: r, c: c, start: time.Now()}, nil
}

func (s *relaySession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *relaySession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != s.r.APIKey || pass != s.r.SecretKey {
			s.r.mu.Lock()
			s.r.authFails++
			s.r.mu.Unlock()
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication failed"}
		}
		s.user = user
		return nil
	}), nil
}

func (s *relaySession) Mail(from string, opts *smtp.MailOptions) error {
	if s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	s.r.mu.Lock()
	f := s.r.mailFault
	s.r.mu.Unlock()
	if err := f.err(); err != nil {
		return err
	}
	s.from, s.rcpts = from, nil
	if opts != nil {
		s.opts = *opts
	}
	return nil
}

func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	f := s.r.rcptFaults[strings.ToLower(to)]
	s.r.mu.Unlock()
	if err := f.err(); err != nil {
		return err
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *relaySession) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		s.c.Close()
		return err
	}
	s.r.mu.Lock()
	delay, drop := s.r.dataDelay, s.r.dropAtData
	var fault error
	if s.r.failNext != 0 {
		fault = s.r.dataFault.err()
		if s.r.failNext > 0 {
			s.r.failNext--
		}
	}
	s.r.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if drop {
		s.c.Close()
		return errors.New("dropped")
	}
	if fault != nil {
		return fault
	}
	var id [8]byte
	rand.Read(id[:])
	qid := hex.EncodeToString(id[:])
	_, isTLS := s.c.TLSConnectionState()
	s.r.mu.Lock()
	s.r.received = append(s.r.received, Received{From: s.from, Rcpts: s.rcpts, Data: b, QueueID: qid, TLS: isTLS, User: s.user, Reused: s.sent > 0, MailOpts: s.opts, Connected: s.start})
	s.r.mu.Unlock()
	s.sent++
	select {
	case s.r.arrivals <- struct{}{}:
	default:
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK queued as " + qid}
}

func (s *relaySession) Reset()        { s.from, s.rcpts = "", nil }
func (s *relaySession) Logout() error { return nil }

// testCert makes a self-signed certificate for 127.0.0.1 and localhost.
func testCert() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "in-v3.mailjet.test"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:        true, BasicConstraintsValid: true,
		DNSNames:    []string{"localhost", "in-v3.mailjet.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
