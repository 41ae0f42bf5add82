package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"
)

// TestHashPasswordOnTerminal types the password on a real pseudo-terminal,
// which is also where the prompts go: it is asked twice, never echoed
// (the terminal shows the prompts only), and the hash printed matches it;
// two different entries print no hash.
func TestHashPasswordOnTerminal(t *testing.T) {
	for _, tc := range []struct {
		name          string
		first, second string
		wantHash      bool
	}{
		{"confirmed", "Typed-Pa55word", "Typed-Pa55word", true},
		{"mistyped", "Typed-Pa55word", "Typed-Pa55wrod", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			term := openPTY(t)
			var stdout bytes.Buffer
			code := make(chan int, 1)
			go func() { code <- runHashPassword(term.tty, &stdout, term.tty) }()

			term.typeWhenAsked(t, "Password: ", tc.first)
			term.typeWhenAsked(t, "Password again: ", tc.second)
			var got int
			select {
			case got = <-code:
			case <-time.After(10 * time.Second):
				t.Fatal("hash-password did not finish")
			}
			term.tty.Close()
			shown := term.readUntil(t, "") // everything, until the terminal closes

			if strings.Contains(shown, "Typed") {
				t.Errorf("the password was echoed on the terminal: %q", shown)
			}
			hash := strings.TrimSpace(stdout.String())
			if !tc.wantHash {
				if got == 0 || hash != "" || !strings.Contains(shown, "differ") {
					t.Errorf("mistyped confirmation: exit %d, stdout %q, terminal %q", got, hash, shown)
				}
				return
			}
			if got != 0 || bcrypt.CompareHashAndPassword([]byte(hash), []byte(tc.first)) != nil {
				t.Errorf("exit %d, hash %q does not match the password; terminal %q", got, hash, shown)
			}
		})
	}
}

// pty is a pseudo-terminal: master is the screen and keyboard, tty the
// program's side; screen is what the master showed so far.
type pty struct {
	master, tty *os.File
	screen      string
}

// openPTY opens a pseudo-terminal. The master stays non-blocking so that
// reads can time out.
func openPTY(t *testing.T) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	raw, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if cerr := raw.Control(func(fd uintptr) {
		if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err == nil {
			n, err = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); cerr != nil || err != nil {
		t.Fatal(cerr, err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &pty{master: m, tty: s}
}

// typeWhenAsked waits for prompt on the screen and for the terminal's echo
// to be off (the password is being read), then types line.
func (p *pty) typeWhenAsked(t *testing.T, prompt, line string) {
	t.Helper()
	p.readUntil(t, prompt)
	deadline := time.Now().Add(10 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(p.tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("asked %q with the echo on; the terminal shows %q", prompt, p.screen)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprint(p.master, line+"\n")
}

// readUntil reads the screen until it shows want after what was already
// read, or with want "" until the terminal closes; it returns the new text.
func (p *pty) readUntil(t *testing.T, want string) string {
	t.Helper()
	start := len(p.screen)
	p.master.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1024)
	for want == "" || !strings.Contains(p.screen[start:], want) {
		n, err := p.master.Read(buf)
		p.screen += string(buf[:n])
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("the terminal does not show %q; it shows %q", want, p.screen)
		case err != nil && want == "":
			return p.screen[start:]
		case err != nil:
			t.Fatalf("terminal: %v; it shows %q", err, p.screen)
		}
	}
	return p.screen[start:]
}
