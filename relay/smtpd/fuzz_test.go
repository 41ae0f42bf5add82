package smtpd_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/smtpd"
)

// pipeListener hands the server one end of in-memory connections that
// look like they come from 127.0.0.1.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// loopConn comes from its own loopback address, so that failed logins of
// earlier inputs do not slow this one down (see the AUTH slowdown).
type loopConn struct {
	net.Conn
	n uint32
}

func (c loopConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, byte(c.n>>16), byte(c.n>>8), byte(c.n)), Port: 40000}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }

// panicLog fails the fuzz run when go-smtp recovers a panic (it only logs).
type panicLog struct{ syncBuffer }

func (p *panicLog) panicked() bool { return strings.Contains(p.String(), "panic") }

func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"EHLO [127.0.0.1]\r\nAUTH PLAIN AG9kb28AcHc=\r\nmail FROM:<bounce@example.com> size=20\r\nrcpt TO:<noreply@odoo.com>\r\ndata\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nAUTH LOGIN b2Rvbw==\r\ncHc=\r\nMAIL FROM:<a@example.com> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<jürgen@example.org>\r\nDATA\r\nSubject: é\r\n\r\n\xc3\xa9\r\n..dots\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nbody\n.\r\nMAIL FROM:<smuggled@x.y>\r\n.\r\n",
		"HELO x\r\nAUTH PLAIN =\r\nAUTH PLAIN *\r\nRSET\r\nNOOP\r\nVRFY a\r\nBDAT 5 LAST\r\nhello",
		"EHLO x\r\nMAIL FROM:<@a,@b:c@d.e>\r\nRCPT TO:<\"q\\\"x\"@example.org>\r\nRCPT TO:<a%b@c.d>\r\nDATA\r\n\r\n.\r\n",
		"EHLO x\r\nSTARTTLS\r\n",
		"EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" + strings.Repeat("x", 3000) + "\r\n.\r\n",
	} {
		f.Add([]byte(seed))
	}
	o := options(f)
	o.MaxMessageSize = 4096
	o.MaxRecipients = 5
	plog := &panicLog{}
	log := slog.New(slog.NewTextHandler(plog, nil))
	srv, err := smtpd.New(o, smtpd.Deps{Intake: newIntake(f, intake.Deps{Logger: log}), Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	var seq atomic.Uint32
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		l.conns <- loopConn{server, seq.Add(1)}
		// End any DATA, then QUIT; the deadline is a backstop for inputs
		// that leave the session waiting (e.g. inside AUTH LOGIN).
		client.SetDeadline(time.Now().Add(time.Second))
		go func() {
			client.Write(in)
			client.Write([]byte("\r\n.\r\nQUIT\r\n"))
		}()
		io.Copy(io.Discard, client) // until the server closes
		client.Close()
		if plog.panicked() {
			t.Fatalf("the session panicked on %q:\n%s", in, plog.String())
		}
	})
}
