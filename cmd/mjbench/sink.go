package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sinkKind is what the sink knows about one message kind.
type sinkKind struct {
	count  int
	lastNS int64
	latUS  []int64
}

// sinkState is the sink's record of arrivals.
type sinkState struct {
	mu    sync.Mutex
	total int
	kinds map[string]*sinkKind
	delay time.Duration
}

func newSinkState() *sinkState { return &sinkState{kinds: map[string]*sinkKind{}} }

// arrived records one accepted message of kind, written at sentNS, that
// arrived at now.
func (s *sinkState) arrived(kind string, sentNS int64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	k := s.kinds[kind]
	if k == nil {
		k = &sinkKind{}
		s.kinds[kind] = k
	}
	k.count++
	k.lastNS = now.UnixNano()
	if sentNS > 0 {
		k.latUS = append(k.latUS, (now.UnixNano()-sentNS)/1000)
	}
}

func (s *sinkState) counts() sinkCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := sinkCounts{Total: s.total, Kinds: map[string]kindCount{}}
	for name, k := range s.kinds {
		c.Kinds[name] = kindCount{Count: k.count, LastNS: k.lastNS}
	}
	return c
}

func (s *sinkState) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(s.counts())
	})
	mux.HandleFunc("GET /lat", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		lat := []int64{}
		if k := s.kinds[r.URL.Query().Get("kind")]; k != nil {
			lat = append(lat, k.latUS...)
		}
		s.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"lat_us": lat})
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if kind := r.URL.Query().Get("kind"); kind != "" {
			delete(s.kinds, kind)
		} else {
			s.kinds, s.total = map[string]*sinkKind{}, 0
		}
		s.mu.Unlock()
	})
	mux.HandleFunc("POST /delay", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.delay = d
		s.mu.Unlock()
	})
	return mux
}

// summary is one line of counts per kind.
func (s *sinkState) summary() string {
	c := s.counts()
	names := make([]string, 0, len(c.Kinds))
	for n := range c.Kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := []string{fmt.Sprintf("total=%d", c.Total)}
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", n, c.Kinds[n].Count))
	}
	return strings.Join(parts, " ")
}

// sinkSession is one upstream session: AUTH PLAIN required before MAIL.
type sinkSession struct {
	st         *sinkState
	user, pass string
	authed     bool
}

func (ss *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != ss.user || pass != ss.pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication failed"}
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error {
	if ss.user != "" && !ss.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	return nil
}

func (ss *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (ss *sinkSession) Data(r io.Reader) error {
	br := bufio.NewReaderSize(r, 8192)
	kind, sent, err := parseBenchHeaders(br)
	if err == nil {
		_, err = io.Copy(io.Discard, br)
	}
	if err != nil {
		return err
	}
	ss.st.mu.Lock()
	delay := ss.st.delay
	ss.st.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	ss.st.arrived(kind, sent, time.Now())
	return nil
}

func (ss *sinkSession) Reset()        {}
func (ss *sinkSession) Logout() error { return nil }

// newSinkServer is the emulated Mailjet relay: STARTTLS with cert, AUTH
// PLAIN (only after STARTTLS) as user/pass, required before MAIL unless
// user is empty.
func newSinkServer(st *sinkState, cert tls.Certificate, user, pass string) *smtp.Server {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{st: st, user: user, pass: pass}, nil
	}))
	srv.Domain = "in-v3.mailjet.test"
	srv.MaxMessageBytes = 64 << 20
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Minute, 5*time.Minute
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.EnableSMTPUTF8 = true
	return srv
}

func runSink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:2587", "SMTP address (STARTTLS offered, AUTH only after it)")
	httpAddr := fs.String("http", "127.0.0.1:2588", "HTTP address of the counters")
	certF := fs.String("tls-cert", "", "PEM certificate (empty: generate one, see --ca-out)")
	keyF := fs.String("tls-key", "", "PEM key")
	caOut := fs.String("ca-out", "", "with a generated certificate: write the CA here")
	user := fs.String("user", "bench-api-key", "AUTH PLAIN user (the Mailjet API key)")
	pass := fs.String("pass", "bench-secret-key", "AUTH PLAIN password (the Mailjet secret key)")
	delay := fs.Duration("data-delay", 0, "delay each reply to the end of DATA")
	every := fs.Duration("print-every", 0, "print the counts this often (0: only at exit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cert tls.Certificate
	var err error
	if *certF != "" {
		cert, err = tls.LoadX509KeyPair(*certF, *keyF)
	} else {
		var files map[string][]byte
		if files, err = makeCerts(); err == nil {
			cert, err = tls.X509KeyPair(files["cert.pem"], files["key.pem"])
			if err == nil && *caOut != "" {
				err = os.WriteFile(*caOut, files["ca.pem"], 0o644)
			}
		}
	}
	if err != nil {
		return err
	}
	st := newSinkState()
	st.delay = *delay
	srv := newSinkServer(st, cert, *user, *pass)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	hln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		ln.Close()
		return err
	}
	go srv.Serve(ln)
	hs := &http.Server{Handler: st.handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(hln)
	fmt.Fprintf(stdout, "mjbench sink: SMTP %s (STARTTLS, AUTH PLAIN %s), HTTP http://%s\n", ln.Addr(), *user, hln.Addr())
	var tick <-chan time.Time
	if *every > 0 {
		t := time.NewTicker(*every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-tick:
			fmt.Fprintln(stdout, "mjbench sink:", st.summary())
		case <-ctx.Done():
			srv.Close()
			hs.Close()
			fmt.Fprintln(stdout, "mjbench sink: stopped;", st.summary())
			return nil
		}
	}
}

// makeCerts returns PEM files: ca.pem (a CA), cert.pem (a server
// certificate it signed for 127.0.0.1, localhost and in-v3.mailjet.test)
// and key.pem.
func makeCerts() (map[string][]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "mjbench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, IsCA: true, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano() + 1), Subject: pkix.Name{CommonName: "in-v3.mailjet.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"in-v3.mailjet.test", "localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		"ca.pem":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}, nil
}

func runGencert(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gencert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "write ca.pem, cert.pem and key.pem here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files, err := makeCerts()
	if err != nil {
		return err
	}
	for name, b := range files {
		perm := os.FileMode(0o644)
		if name == "key.pem" {
			perm = 0o600
		}
		if err := os.WriteFile(filepath.Join(*dir, name), b, perm); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %s/{ca,cert,key}.pem\n", *dir)
	return nil
}

func runFreeport(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("freeport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 1, "how many ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for i := 0; i < *n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns = append(lns, l)
		fmt.Fprintln(stdout, l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
