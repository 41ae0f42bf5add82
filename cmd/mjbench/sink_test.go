package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// startSink serves a sink on a free port; it returns its SMTP address, its
// state, the CA that signed its certificate and the HTTP base URL.
func startSink(t *testing.T, user, pass string) (string, *sinkState, *x509.CertPool, string) {
	t.Helper()
	files, err := makeCerts()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(files["cert.pem"], files["key.pem"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(files["ca.pem"]) {
		t.Fatal("bad CA")
	}
	st := newSinkState()
	srv := newSinkServer(st, cert, user, pass)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	hs := httptest.NewServer(st.handler())
	t.Cleanup(func() { srv.Close(); hs.Close() })
	return ln.Addr().String(), st, pool, hs.URL
}

func TestSinkAsMailjet(t *testing.T) {
	addr, st, pool, _ := startSink(t, "key", "secret")
	// The certificate verifies for 127.0.0.1 and for the name Postfix matches.
	for _, name := range []string{"127.0.0.1", "in-v3.mailjet.test"} {
		c, err := smtp.DialStartTLS(addr, &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Fatalf("STARTTLS as %s: %v", name, err)
		}
		c.Close()
	}
	msg := string(msgHeader("probe-idle", 1, time.Now().Add(-5*time.Millisecond), false)) + "hello\r\n"
	for _, tc := range []struct {
		name, user, pass string
		tls              bool
		code             int // 0: accepted
	}{
		{"no auth", "", "", true, 530},
		{"wrong secret", "key", "nope", true, 535},
		{"no TLS, so no AUTH", "key", "secret", false, -1},
		{"good", "key", "secret", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *smtp.Client
			var err error
			if tc.tls {
				c, err = smtp.DialStartTLS(addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			} else {
				c, err = smtp.Dial(addr)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.user != "" {
				err = c.Auth(sasl.NewPlainClient("", tc.user, tc.pass))
			}
			if err == nil {
				err = c.SendMail("bounce@example.com", []string{"client@example.org"}, strings.NewReader(msg))
			}
			var se *smtp.SMTPError
			switch {
			case tc.code == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.code > 0 && !(errors.As(err, &se) && se.Code == tc.code):
				t.Fatalf("got %v, want %d", err, tc.code)
			case tc.code < 0 && err == nil:
				t.Fatal("accepted without AUTH")
			}
		})
	}
	c := st.counts()
	if c.Total != 1 || c.Kinds["probe-idle"].Count != 1 {
		t.Fatalf("counts %+v, want the one good message", c)
	}
	if lat := st.kinds["probe-idle"].latUS; len(lat) != 1 || lat[0] < 5000 || lat[0] > 5_000_000 {
		t.Errorf("latency %v µs, want about 5 ms", lat)
	}
}

func TestSinkHTTP(t *testing.T) {
	_, st, _, base := startSink(t, "", "")
	now := time.Now()
	st.arrived("load", now.Add(-2*time.Millisecond).UnixNano(), now)
	st.arrived("load", 0, now) // no X-Mjbench-Sent: counted, no latency
	st.arrived("bulk", now.UnixNano(), now)
	sc := sinkClient{base}
	if k, err := sc.kind("load"); err != nil || k.Count != 2 || k.LastNS != now.UnixNano() {
		t.Fatalf("load: %+v, %v", k, err)
	}
	if lat, err := sc.latencies("load"); err != nil || len(lat) != 1 || lat[0] != 2 {
		t.Fatalf("latencies %v, %v", lat, err)
	}
	if lat, err := sc.latencies("nothing"); err != nil || len(lat) != 0 {
		t.Fatalf("latencies of an unknown kind: %v, %v", lat, err)
	}
	if err := sc.reset("load"); err != nil {
		t.Fatal(err)
	}
	if k, _ := sc.kind("load"); k.Count != 0 {
		t.Errorf("load after reset: %+v", k)
	}
	if k, _ := sc.kind("bulk"); k.Count != 1 {
		t.Errorf("reset of load touched bulk: %+v", k)
	}
	if err := sc.do("POST", "/delay?d=3ms", nil); err != nil || st.delay != 3*time.Millisecond {
		t.Errorf("delay: %v %v", st.delay, err)
	}
	if err := sc.do("POST", "/delay?d=soon", nil); err == nil {
		t.Error("bad delay accepted")
	}
	if _, err := sc.waitArrived("bulk", 2, 50*time.Millisecond); err == nil {
		t.Error("waitArrived did not time out")
	}
	resp, err := http.Get(base + "/count")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c sinkCounts
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || c.Total != 3 {
		t.Errorf("count: %+v %v", c, err)
	}
}

// The load loops against the sink (no AUTH asked): every message counted,
// latencies recorded, sessions reused.
func TestLoops(t *testing.T) {
	addr, st, _, base := startSink(t, "", "")
	sc := sinkClient{base}
	body := msgBody(2048, "load", false)
	mk := func(kind string) makeMsg {
		return func(i int) ([]byte, []byte) { return msgHeader(kind, i, time.Now(), false), body }
	}
	cls, err := dialAll(addr, "", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range cls {
			c.close()
		}
	}()
	var errs errCount
	lats := closedLoop(context.Background(), cls, 50, mk("load"), &errs)
	if len(lats) != 50 || errs.n != 0 {
		t.Fatalf("closed loop: %d acknowledged, errors %d %s", len(lats), errs.n, errs.first)
	}
	if _, err := sc.waitArrived("load", 50, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	lats, started, skipped := openLoop(context.Background(), cls, 2*time.Millisecond, 20, nil, mk("rate"), &errs)
	if len(lats) != 20 || started != 20 || errs.n != 0 {
		t.Fatalf("open loop: %d acknowledged of %d started (%d skipped), errors %d", len(lats), started, skipped, errs.n)
	}
	n := 0
	lats, started, _ = openLoop(context.Background(), cls, time.Millisecond, 0, func() bool { n++; return n > 10 }, mk("stop"), &errs)
	if started != 10 || len(lats) != 10 {
		t.Fatalf("open loop with stop: %d started, %d acknowledged", started, len(lats))
	}
	if got := st.counts().Total; got < 70 {
		t.Errorf("sink counted %d", got)
	}
	// A body with dot lines and no final CRLF goes through.
	if _, err := cls[0].send([]byte("X-Mjbench-Kind: dots\r\n\r\n"), []byte(".\r\n..\r\nend")); err != nil {
		t.Fatal(err)
	}
	if k, err := sc.waitArrived("dots", 1, 5*time.Second); err != nil || k.Count != 1 {
		t.Fatalf("dots: %+v %v", k, err)
	}
}

// A refused transaction leaves the session usable; AUTH PLAIN is sent when
// asked for (here refused: the sink offers AUTH only after STARTTLS).
func TestClientReplies(t *testing.T) {
	addr, _, _, _ := startSink(t, "key", "secret")
	cl, err := newClient(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	for i := 0; i < 2; i++ {
		_, err := cl.send([]byte("Subject: x\r\n\r\n"), []byte("x\r\n"))
		var re *replyError
		if !errors.As(err, &re) || re.code != 530 || cl.c == nil {
			t.Fatalf("send %d: %v (session kept: %v), want a 530 and the session kept", i, err, cl.c != nil)
		}
	}
	if _, err := newClient(addr, "key:secret"); err == nil {
		t.Error("AUTH without TLS accepted")
	}
}
