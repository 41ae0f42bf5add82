package notify

import (
	"net"
	"os"
	"strings"
	"syscall"
)

// Listener is the manager's side: the datagram socket the service's
// processes send to.
type Listener struct {
	c    *net.UnixConn
	addr string
}

// Listen opens the socket at addr ("@name" for an abstract socket, which
// needs no file system; a path is removed first if it exists).
func Listen(addr string) (*Listener, error) {
	if !strings.HasPrefix(addr, "@") {
		os.Remove(addr)
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	return &Listener{c: c, addr: addr}, nil
}

// Addr is the value for NOTIFY_SOCKET.
func (l *Listener) Addr() string { return l.addr }

// Close stops listening (and removes a socket file).
func (l *Listener) Close() error {
	err := l.c.Close()
	if !strings.HasPrefix(l.addr, "@") {
		os.Remove(l.addr)
	}
	return err
}

// Message is one notification: its KEY=VALUE fields.
type Message map[string]string

// String is the message as sent, one field a line, in no fixed order.
func (m Message) String() string {
	var b strings.Builder
	for k, v := range m {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + "=" + v)
	}
	return b.String()
}

// Read returns the next message. A file descriptor that came with it (a
// BARRIER=1's pipe) is closed at once: messages are read in the order
// they were sent, so everything before the barrier has been read.
func (l *Listener) Read() (Message, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(16*4))
	n, oobn, _, _, err := l.c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	if cmsgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, cm := range cmsgs {
			if fds, err := syscall.ParseUnixRights(&cm); err == nil {
				for _, fd := range fds {
					syscall.Close(fd)
				}
			}
		}
	}
	return Parse(string(buf[:n])), nil
}

// Parse reads a message's KEY=VALUE lines; lines without "=" are ignored.
func Parse(s string) Message {
	m := Message{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}
