package web

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// maxEventBytes bounds one event object of a webhook payload; a larger one
// is skipped as malformed without being held in memory (Mailjet's events
// are well under 2 KB).
const maxEventBytes = 64 << 10

var errEmptyPayload = errors.New("empty payload")

// eventReader splits a webhook payload, a JSON array of events or one
// event object, into the raw bytes of each element as it reads the body:
// it holds one element at a time, at most maxEventBytes of it. It only
// finds where elements start and end (strings, escapes, nesting); each
// element is then decoded on its own, so that a malformed event costs only
// itself. A payload that is not an array or an object, or whose array
// syntax breaks, ends with an error.
type eventReader struct {
	br      *bufio.Reader
	buf     []byte
	started bool
	done    bool
	n       int // elements returned
}

func newEventReader(r io.Reader) *eventReader {
	return &eventReader{br: bufio.NewReaderSize(r, 32<<10)}
}

// next returns the next element's bytes, valid until the following call,
// or oversize when the element was longer than maxEventBytes. After the
// last element it returns io.EOF.
func (er *eventReader) next() (raw []byte, oversize bool, err error) {
	if er.done {
		return nil, false, io.EOF
	}
	if !er.started {
		er.started = true
		c, err := er.skipSpace()
		switch {
		case err == io.EOF:
			return nil, false, errEmptyPayload
		case err != nil:
			return nil, false, err
		case c == '{':
			er.done = true
			er.br.UnreadByte()
			return er.value()
		case c != '[':
			return nil, false, fmt.Errorf("not a JSON array or object (starts with %q)", c)
		}
	}
	c, err := er.skipSpace()
	if err != nil {
		return nil, false, unexpected(err)
	}
	if c == ']' && er.n == 0 {
		er.done = true
		return nil, false, io.EOF
	}
	if er.n > 0 {
		switch c {
		case ']':
			er.done = true
			return nil, false, io.EOF
		case ',':
			if c, err = er.skipSpace(); err != nil {
				return nil, false, unexpected(err)
			}
		default:
			return nil, false, fmt.Errorf("after event %d: %q where ',' or ']' belongs", er.n, c)
		}
	}
	if c == ']' || c == ',' {
		return nil, false, fmt.Errorf("after event %d: %q where an event belongs", er.n, c)
	}
	er.br.UnreadByte()
	er.n++
	return er.value()
}

// value reads one JSON value: an object, an array, a string, or a scalar
// ended by a delimiter (left unread).
func (er *eventReader) value() ([]byte, bool, error) {
	er.buf = er.buf[:0]
	oversize := false
	depth, inStr, esc, scalar := 0, false, false, false
	for first := true; ; first = false {
		c, err := er.br.ReadByte()
		if err == io.EOF && scalar {
			break
		} else if err != nil {
			return nil, false, unexpected(err)
		}
		if scalar && (c == ',' || c == ']' || c == '}' || isSpace(c)) {
			er.br.UnreadByte()
			break
		}
		if len(er.buf) < maxEventBytes {
			er.buf = append(er.buf, c)
		} else {
			oversize = true
		}
		end := false
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case inStr:
			inStr = c != '"'
			end = !inStr && depth == 0
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth < 0 {
				return nil, false, fmt.Errorf("event %d: unexpected %q", er.n, c)
			}
			end = depth == 0
		case first:
			scalar = true
		}
		if end {
			break
		}
	}
	if oversize {
		return nil, true, nil
	}
	return er.buf, false, nil
}

func (er *eventReader) skipSpace() (byte, error) {
	for {
		c, err := er.br.ReadByte()
		if err != nil || !isSpace(c) {
			return c, err
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
