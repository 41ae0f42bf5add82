// Package notify speaks the service manager's notification protocol
// (systemd's sd_notify(3)): a process tells the manager listening on the
// datagram socket NOTIFY_SOCKET that it is ready (READY=1), reloading
// (RELOADING=1), stopping (STOPPING=1), or that another process is now the
// service's main one (MAINPID=). A BARRIER=1 message waits until the
// manager has read everything sent before it, so that a process that
// hands the service over can exit only once the manager knows the new
// main PID.
//
// Both sides are here: Sender for the relay, Listener for what manages
// it when systemd does not (the relay's own init as PID 1 in a container,
// and the tests).
package notify

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Env is the variable that names the manager's socket: a path, or an
// abstract socket name after "@".
const Env = "NOTIFY_SOCKET"

// The states the relay sends.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
)

// MainPID is the field that names the service's main process.
func MainPID(pid int) string { return "MAINPID=" + strconv.Itoa(pid) }

// Status is the field with a line of text for `systemctl status`.
func Status(text string) string { return "STATUS=" + strings.ReplaceAll(text, "\n", " ") }

// MonotonicUsec is the field newer systemd versions want with RELOADING=1:
// CLOCK_MONOTONIC now, in microseconds.
func MonotonicUsec() string {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return ""
	}
	return "MONOTONIC_USEC=" + strconv.FormatInt(ts.Sec*1e6+ts.Nsec/1e3, 10)
}

// Sender sends notifications to a manager. The nil *Sender (no manager)
// sends nothing and reports no error.
type Sender struct{ addr string }

// FromEnv is the sender to $NOTIFY_SOCKET, or nil when it is not set.
func FromEnv() *Sender {
	if a := os.Getenv(Env); a != "" {
		return &Sender{addr: a}
	}
	return nil
}

// NewSender sends to the socket at addr ("@name" for an abstract one).
func NewSender(addr string) *Sender { return &Sender{addr: addr} }

// Send sends one message made of fields (KEY=VALUE each).
func (s *Sender) Send(fields ...string) error {
	if s == nil {
		return nil
	}
	var kept []string
	for _, f := range fields {
		if f != "" {
			kept = append(kept, f)
		}
	}
	return s.send([]byte(strings.Join(kept, "\n")), nil)
}

func (s *Sender) send(msg, oob []byte) error {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	defer syscall.Close(fd)
	// A name starting with "@" is an abstract socket (syscall maps it).
	if err := syscall.Sendmsg(fd, msg, oob, &syscall.SockaddrUnix{Name: s.addr}, 0); err != nil {
		return fmt.Errorf("notify: sending to %s: %w", s.addr, err)
	}
	return nil
}

// ErrBarrierTimeout is returned by Barrier when the manager did not read
// the messages in time.
var ErrBarrierTimeout = errors.New("notify: the service manager did not confirm the barrier in time")

// Barrier returns once the manager has read every message sent before it
// (sd_notify_barrier(3)), or after timeout with ErrBarrierTimeout. It
// sends BARRIER=1 with the write end of a pipe, which the manager closes
// after reading it; the read end then sees EOF.
func (s *Sender) Barrier(timeout time.Duration) error {
	if s == nil {
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	rc, err := w.SyscallConn()
	if err != nil {
		w.Close()
		return err
	}
	var oob []byte
	rc.Control(func(fd uintptr) { oob = syscall.UnixRights(int(fd)) })
	err = s.send([]byte("BARRIER=1"), oob)
	w.Close()
	if err != nil {
		return err
	}
	r.SetReadDeadline(time.Now().Add(timeout))
	var b [1]byte
	for {
		_, err := r.Read(b[:])
		switch {
		case err == io.EOF:
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return ErrBarrierTimeout
		case err != nil:
			return err
		}
	}
}
