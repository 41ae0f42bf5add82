package smtpd

import (
	"fmt"
	"strings"
	"time"
)

// floodInterval is how often a flood of one kind of log line or refusal
// record is summed up in one (see burst).
const floodInterval = time.Minute

// logLine is a warning the server writes.
type logLine struct {
	msg  string
	args []any
}

// warn logs a warning of a kind that can come in floods: the first at once,
// then one line per floodInterval that says how many it stands for.
func (s *Server) warn(kind, msg string, args ...any) {
	s.logs.add(kind, logLine{msg, args})
}

func (s *Server) logLine(l logLine, n int) {
	args := l.args
	if n > 1 {
		args = append(args[:len(args):len(args)], "count", n, "in_last", floodInterval.String())
	}
	s.log.Warn(l.msg, args...)
}

// slogErrorLog is go-smtp's error log. Most of its lines are about one
// connection ("error handling 192.0.2.1:4321: read: connection reset by
// peer": a client that connects and goes without reading the greeting, a
// port scan, a TLS probe on the implicit TLS port), one per connection, so
// they are aggregated; anything else (a recovered panic) is logged as is.
type slogErrorLog struct{ s *Server }

func (e slogErrorLog) Printf(format string, v ...any) { e.line(fmt.Sprintf(format, v...)) }
func (e slogErrorLog) Println(v ...any)               { e.line(fmt.Sprint(v...)) }

func (e slogErrorLog) line(text string) {
	switch {
	case strings.HasPrefix(text, "error handling "):
		e.s.warn("client connection error", "SMTP connection ended by a client error", "detail", strings.TrimPrefix(text, "error handling "))
	case strings.HasPrefix(text, "panic"):
		e.s.log.Error("smtp library", "detail", text)
	default:
		e.s.log.Warn("smtp library", "detail", text)
	}
}
