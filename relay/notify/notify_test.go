package notify_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/notify"
)

func listen(t *testing.T, addr string) *notify.Listener {
	t.Helper()
	l, err := notify.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestMessages: what the relay sends reaches a manager as its fields, on
// a socket file and on an abstract socket (the relay's own init uses one).
func TestMessages(t *testing.T) {
	for _, addr := range []string{
		filepath.Join(t.TempDir(), "notify.sock"),
		fmt.Sprintf("@mjrelay-notify-test-%d", os.Getpid()),
	} {
		l := listen(t, addr)
		s := notify.NewSender(l.Addr())
		if err := s.Send(notify.MainPID(1234), notify.Ready, "", notify.Status("ready\nto go")); err != nil {
			t.Fatal(err)
		}
		m, err := l.Read()
		if err != nil {
			t.Fatal(err)
		}
		if m["MAINPID"] != "1234" || m["READY"] != "1" || m["STATUS"] != "ready to go" || len(m) != 3 {
			t.Errorf("%s: got %v", addr, m)
		}
		if err := s.Send(notify.Reloading, notify.MonotonicUsec()); err != nil {
			t.Fatal(err)
		}
		m, _ = l.Read()
		if us, err := strconv.ParseInt(m["MONOTONIC_USEC"], 10, 64); m["RELOADING"] != "1" || err != nil || us <= 0 {
			t.Errorf("%s: got %v", addr, m)
		}
	}
}

// TestBarrier: Barrier returns only once the manager has read the
// messages sent before it, and times out when nobody reads.
func TestBarrier(t *testing.T) {
	l := listen(t, filepath.Join(t.TempDir(), "notify.sock"))
	s := notify.NewSender(l.Addr())
	if err := s.Send(notify.MainPID(42), notify.Ready); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Barrier(10 * time.Second) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Barrier returned (%v) before the manager read anything", err)
	default:
	}
	if m, _ := l.Read(); m["MAINPID"] != "42" {
		t.Fatalf("first message %v", m)
	}
	if m, _ := l.Read(); m["BARRIER"] != "1" {
		t.Fatalf("second message %v", m)
	}
	if err := <-done; err != nil {
		t.Fatalf("Barrier after the manager read it: %v", err)
	}

	// Nobody reads: the barrier times out.
	if err := s.Barrier(200 * time.Millisecond); !errors.Is(err, notify.ErrBarrierTimeout) {
		t.Fatalf("unread barrier: %v, want ErrBarrierTimeout", err)
	}
}

// TestNoManager: without NOTIFY_SOCKET there is no sender, and sending
// through it does nothing.
func TestNoManager(t *testing.T) {
	t.Setenv(notify.Env, "")
	s := notify.FromEnv()
	if s != nil {
		t.Fatalf("FromEnv without %s: %v", notify.Env, s)
	}
	if err := s.Send(notify.Ready); err != nil {
		t.Fatal(err)
	}
	if err := s.Barrier(time.Second); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "n.sock")
	t.Setenv(notify.Env, sock)
	if notify.FromEnv() == nil {
		t.Fatal("FromEnv ignores NOTIFY_SOCKET")
	}
}

func TestParse(t *testing.T) {
	m := notify.Parse("READY=1\nSTATUS=a=b\n\nnoise\nMAINPID=7")
	if len(m) != 3 || m["STATUS"] != "a=b" || m["MAINPID"] != "7" {
		t.Errorf("Parse: %v", m)
	}
}
