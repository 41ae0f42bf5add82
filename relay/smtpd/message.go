package smtpd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

var errBareCR = errors.New("bare CR")

// normalizeEOL checks and fixes line endings. A bare LF becomes CRLF, as
// Python's smtplib would have sent it; a bare CR (never produced by a
// well-behaved client, and the stuff of SMTP smuggling) is refused. The
// common case, a message that is already clean, is returned as is.
func normalizeEOL(b []byte) ([]byte, error) {
	bareLF := false
	for i := 0; ; {
		j := bytes.IndexAny(b[i:], "\r\n")
		if j < 0 {
			break
		}
		i += j
		if b[i] == '\r' {
			if i+1 >= len(b) || b[i+1] != '\n' {
				return nil, errBareCR
			}
			i += 2
			continue
		}
		bareLF = true
		i++
	}
	if !bareLF {
		return b, nil
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for i := 0; i < len(b); i++ {
		if b[i] == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, b[i])
	}
	return out, nil
}

func clip(s string, n int) string { return s[:min(len(s), n)] }

// readBody reads DATA into buf, keeping at most limit+1 bytes, and returns
// the size of the message as the client sent it: past the limit the rest is
// read and counted, not kept (go-smtp would read it to the end of DATA
// anyway), so that a refusal can say how large it was. The reader's errors
// come back unchanged (smtp.ErrTooLongLine keeps its identity).
func readBody(buf *bytes.Buffer, r io.Reader, limit int64) (int64, error) {
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil || n <= limit {
		return n, err
	}
	rest, err := io.Copy(io.Discard, r)
	return n + rest, err
}

// tooLargeText is the reply to a message of size bytes over limit.
func tooLargeText(size, limit int64) string {
	got, lim := sizeText(size), sizeText(limit)
	if got == lim {
		got, lim = fmt.Sprintf("%d bytes", size), fmt.Sprintf("%d bytes", limit)
	}
	return fmt.Sprintf("Message too large: %s, the limit is %s (smtp.max_message_size)", got, lim)
}

// sizeText writes a size the way Odoo does (MB of 1024 KB): "4.5 MB".
func sizeText(n int64) string {
	unit, div := "bytes", 1.0
	switch {
	case n >= 1<<20:
		unit, div = "MB", 1<<20
	case n >= 1<<10:
		unit, div = "KB", 1<<10
	}
	v := strconv.FormatFloat(float64(n)/div, 'f', 1, 64)
	return strings.TrimSuffix(v, ".0") + " " + unit
}
