package smtpd_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/relay/authlimit"
	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/smtpd"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// options are the SMTP settings the relay runs with when its configuration
// file says nothing (config.Default), and user odoo/pw.
func options(tb testing.TB) smtpd.Options {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	return smtpd.Options{
		Hostname: "mjrelay.local", TLSDir: filepath.Join(tb.TempDir(), "tls"),
		MaxMessageSize: 26214400, MaxRecipients: 100, MaxConnections: 500,
		ReadTimeout: 5 * time.Minute, DataTimeout: 10 * time.Minute,
		Users: []smtpd.User{{Username: "odoo", PasswordHash: string(hash)}},
	}
}

// newIntake is an intake over a real spool.
func newIntake(tb testing.TB, d intake.Deps) *intake.Intake {
	tb.Helper()
	sp, err := spool.Open(tb.TempDir(), spool.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sp.Close() })
	d.Queue = sp
	return intake.New(intake.Options{Hostname: "mjrelay.local"}, d)
}

// serve runs a Server on 127.0.0.1 with user odoo/pw and a real spool, and
// returns its address.
func serve(t *testing.T, d smtpd.Deps) string {
	t.Helper()
	d.Intake = newIntake(t, intake.Deps{Traffic: d.Traffic})
	srv, err := smtpd.New(options(t), d)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return l.Addr().String()
}

// odooLogin logs in as Odoo does (Python's smtplib: PLAIN, then LOGIN if
// PLAIN fails) and returns what Odoo's Test Connection shows.
func odooLogin(t *testing.T, addr, user, pass string) string {
	t.Helper()
	var res struct{ Result string }
	odooScript(t, &res, "odoo_smtp.py", "test-connection", addr, "none", user, pass, "a@example.com")
	return res.Result
}

// TestOdooTypoCountsOnceAndLoginClearsIt: smtplib's PLAIN then LOGIN with
// the same wrong password is one failed guess, Odoo retrying it on a new
// connection is not another, and the right password clears the address's
// failures for that user.
func TestOdooTypoCountsOnceAndLoginClearsIt(t *testing.T) {
	lim := authlimit.New(authlimit.Options{Burst: 3, Every: time.Hour, MaxWait: time.Second})
	traffic := &trafficlog.Memory{}
	addr := serve(t, smtpd.Deps{Guesses: lim, Traffic: traffic})
	steps := []struct {
		pass, shows string
		failures    int
	}{
		{"typo", "535", 1},
		{"typo", "535", 1},
		{"pw", "Connection Test Successful!", 0},
		{"other typo", "535", 1},
	}
	for i, st := range steps {
		shown := odooLogin(t, addr, "odoo", st.pass)
		if !strings.Contains(shown, st.shows) || lim.Failures("127.0.0.1") != st.failures {
			t.Fatalf("step %d (%s): Odoo shows %q, %d failures counted; want %q, %d",
				i, st.pass, shown, lim.Failures("127.0.0.1"), st.shows, st.failures)
		}
	}
	if n := len(traffic.Events(trafficlog.Refused)); n != 6 {
		t.Errorf("%d refusals recorded; want 6 (PLAIN and LOGIN, three times)", n)
	}
}

// TestParallelGuessesShareTheBurst: guesses on many connections from one
// address at once get the address's burst between them; the others are
// refused for now (454), not checked.
func TestParallelGuessesShareTheBurst(t *testing.T) {
	lim := authlimit.New(authlimit.Options{Burst: 3, Every: time.Hour, MaxWait: 5 * time.Second})
	traffic := &trafficlog.Memory{}
	addr := serve(t, smtpd.Deps{Guesses: lim, Traffic: traffic})
	const conns = 12
	var mu sync.Mutex
	replies := map[int]int{}
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			err = c.Auth(sasl.NewPlainClient("", "odoo", fmt.Sprint("guess", i)))
			mu.Lock()
			defer mu.Unlock()
			if se, ok := err.(*smtp.SMTPError); ok {
				replies[se.Code]++
			} else {
				t.Errorf("guess %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if replies[535] != 3 || replies[454] != conns-3 {
		t.Fatalf("replies %v; want 3 guesses checked (535) and %d refused for now (454)", replies, conns-3)
	}
	var throttled int
	for _, ev := range traffic.Events(trafficlog.Refused) {
		if ev.Reason == "auth_throttled" {
			throttled++
			if !strings.HasPrefix(ev.Reply.String(), "454 4.7.0 Too many failed logins from your address: try again in ") {
				t.Errorf("throttled reply %q", ev.Reply)
			}
		}
	}
	if throttled != 1 {
		t.Errorf("%d auth_throttled records; want the first only (the rest are counted at the interval's end)", throttled)
	}
}
