package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// smtpClient is one submission session, spoken like Odoo's smtplib (one
// command at a time, no PIPELINING) but without go-smtp's per-byte
// dot-stuffing writer, so that the load generator takes as little CPU as
// possible from the system under test on the same cores. It redials after a
// broken connection.
type smtpClient struct {
	addr, auth string
	c          net.Conn
	br         *bufio.Reader
	bw         *bufio.Writer
}

// replyError is a 4xx/5xx reply.
type replyError struct {
	code int
	text string
}

func (e *replyError) Error() string { return e.text }

func newClient(addr, auth string) (*smtpClient, error) {
	cl := &smtpClient{addr: addr, auth: auth}
	return cl, cl.dial()
}

func (cl *smtpClient) dial() error {
	c, err := net.DialTimeout("tcp", cl.addr, 30*time.Second)
	if err != nil {
		return err
	}
	cl.c, cl.br, cl.bw = c, bufio.NewReader(c), bufio.NewWriterSize(c, 32<<10)
	c.SetDeadline(time.Now().Add(time.Minute))
	err = cl.expect(220)
	if err == nil {
		err = cl.cmd(250, "EHLO mjbench.local")
	}
	if err == nil && cl.auth != "" {
		user, pass, _ := strings.Cut(cl.auth, ":")
		err = cl.cmd(235, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
	}
	if err != nil {
		c.Close()
		cl.c = nil
	}
	return err
}

// expect reads a reply and wants code.
func (cl *smtpClient) expect(code int) error {
	got, text, err := readReply(cl.br)
	if err != nil {
		return err
	}
	if got != code && !(code == 250 && got == 251) {
		return &replyError{got, text}
	}
	return nil
}

func (cl *smtpClient) cmd(code int, line string) error {
	cl.bw.WriteString(line)
	cl.bw.WriteString("\r\n")
	if err := cl.bw.Flush(); err != nil {
		return err
	}
	return cl.expect(code)
}

// send submits one message (header then body, CRLF line ends) and returns
// the time from MAIL FROM to the reply after DATA.
func (cl *smtpClient) send(hdr, body []byte) (time.Duration, error) {
	if cl.c == nil {
		if err := cl.dial(); err != nil {
			return 0, err
		}
	}
	cl.c.SetDeadline(time.Now().Add(10 * time.Minute))
	start := time.Now()
	err := cl.transaction(hdr, body)
	took := time.Since(start)
	if err != nil {
		var re *replyError
		if !errors.As(err, &re) || cl.cmd(250, "RSET") != nil {
			cl.c.Close()
			cl.c = nil
		}
	}
	return took, err
}

func (cl *smtpClient) transaction(hdr, body []byte) error {
	// SIZE= as Odoo (Python's smtplib) sends it: the message's length.
	if err := cl.cmd(250, fmt.Sprintf("MAIL FROM:<bounce@example.com> SIZE=%d", len(hdr)+len(body))); err != nil {
		return err
	}
	if err := cl.cmd(250, "RCPT TO:<client@example.org>"); err != nil {
		return err
	}
	if err := cl.cmd(354, "DATA"); err != nil {
		return err
	}
	atLineStart := writeDotted(cl.bw, hdr, true)
	if !writeDotted(cl.bw, body, atLineStart) {
		cl.bw.WriteString("\r\n")
	}
	return cl.cmd(250, ".")
}

// writeDotted writes b doubling a dot that starts a line (RFC 5321
// 4.5.2), in bulk; atLineStart says whether b starts a line. It returns
// whether b ends one.
func writeDotted(w *bufio.Writer, b []byte, atLineStart bool) bool {
	for len(b) > 0 {
		if atLineStart && b[0] == '.' {
			w.WriteByte('.')
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.Write(b)
			return false
		}
		w.Write(b[:i+1])
		b, atLineStart = b[i+1:], true
	}
	return atLineStart
}

func (cl *smtpClient) close() {
	if cl.c != nil {
		cl.c.SetDeadline(time.Now().Add(5 * time.Second))
		cl.cmd(221, "QUIT")
		cl.c.Close()
		cl.c = nil
	}
}

// dialAll opens n sessions in parallel.
func dialAll(addr, auth string, n int) ([]*smtpClient, error) {
	cls := make([]*smtpClient, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cls[i], errs[i] = newClient(addr, auth)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range cls {
			if c != nil {
				c.close()
			}
		}
		return nil, err
	}
	return cls, nil
}

// errCount counts failed submissions and keeps the first error.
type errCount struct {
	mu    sync.Mutex
	n     int
	first string
}

func (e *errCount) add(err error) {
	e.mu.Lock()
	if e.n == 0 {
		e.first = err.Error()
	}
	e.n++
	e.mu.Unlock()
}

// sinkClient talks to the sink's HTTP endpoint.
type sinkClient struct{ base string }

type kindCount struct {
	Count  int   `json:"count"`
	LastNS int64 `json:"last_ns"`
}

type sinkCounts struct {
	Total int                  `json:"total"`
	Kinds map[string]kindCount `json:"kinds"`
}

func (s sinkClient) do(method, path string, out any) error {
	req, _ := http.NewRequest(method, strings.TrimRight(s.base, "/")+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("sink %s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (s sinkClient) reset(kind string) error {
	return s.do("POST", "/reset?kind="+url.QueryEscape(kind), nil)
}

func (s sinkClient) kind(kind string) (kindCount, error) {
	var c sinkCounts
	err := s.do("GET", "/count", &c)
	return c.Kinds[kind], err
}

// latencies are the end-to-end latencies of kind, in sorted milliseconds.
func (s sinkClient) latencies(kind string) ([]float64, error) {
	var v struct {
		LatUS []int64 `json:"lat_us"`
	}
	if err := s.do("GET", "/lat?kind="+url.QueryEscape(kind), &v); err != nil {
		return nil, err
	}
	ds := make([]time.Duration, len(v.LatUS))
	for i, us := range v.LatUS {
		ds[i] = time.Duration(us) * time.Microsecond
	}
	return durationsMS(ds), nil
}

// waitArrived polls until n messages of kind arrived or timeout passes; it
// returns the kind's state at that point.
func (s sinkClient) waitArrived(kind string, n int, timeout time.Duration) (kindCount, error) {
	deadline := time.Now().Add(timeout)
	for {
		k, err := s.kind(kind)
		if err == nil && k.Count >= n {
			return k, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("only %d of %d %q messages reached the sink after %s", k.Count, n, kind, timeout)
			}
			return k, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
