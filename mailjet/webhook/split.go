package webhook

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MaxEventBytes bounds one event object of a payload: a larger one is
// skipped as malformed without being held in memory (Mailjet's events are
// well under 2 KB).
const MaxEventBytes = 64 << 10

var errEmptyPayload = errors.New("empty payload")

// splitter splits a webhook payload, a JSON array of events or one
// event object, into the raw bytes of each element as it reads the body:
// it holds one element at a time, at most MaxEventBytes of it. It only
// finds where elements start and end (strings, escapes, nesting); each
// element is then decoded on its own, so that a malformed event costs only
// itself. A payload that is not an array or an object, or whose array
// syntax breaks, ends with an error.
type splitter struct {
	br      *bufio.Reader
	buf     []byte
	started bool
	done    bool
	n       int // elements returned
}

func newSplitter(r io.Reader) *splitter {
	return &splitter{br: bufio.NewReaderSize(r, 32<<10)}
}

// next returns the next element's bytes, valid until the following call,
// or oversize when the element was longer than MaxEventBytes. After the
// last element it returns io.EOF.
func (sp *splitter) next() (raw []byte, oversize bool, err error) {
	if sp.done {
		return nil, false, io.EOF
	}
	if !sp.started {
		sp.started = true
		c, err := sp.skipSpace()
		switch {
		case err == io.EOF:
			return nil, false, errEmptyPayload
		case err != nil:
			return nil, false, err
		case c == '{':
			sp.done = true
			sp.br.UnreadByte()
			return sp.value()
		case c != '[':
			return nil, false, fmt.Errorf("not a JSON array or object (starts with %q)", c)
		}
	}
	c, err := sp.skipSpace()
	if err != nil {
		return nil, false, unexpected(err)
	}
	if c == ']' && sp.n == 0 {
		sp.done = true
		return nil, false, io.EOF
	}
	if sp.n > 0 {
		switch c {
		case ']':
			sp.done = true
			return nil, false, io.EOF
		case ',':
			if c, err = sp.skipSpace(); err != nil {
				return nil, false, unexpected(err)
			}
		default:
			return nil, false, fmt.Errorf("after event %d: %q where ',' or ']' belongs", sp.n, c)
		}
	}
	if c == ']' || c == ',' {
		return nil, false, fmt.Errorf("after event %d: %q where an event belongs", sp.n, c)
	}
	sp.br.UnreadByte()
	sp.n++
	return sp.value()
}

// value reads one JSON value: an object, an array, a string, or a scalar
// ended by a delimiter (left unread).
func (sp *splitter) value() ([]byte, bool, error) {
	sp.buf = sp.buf[:0]
	oversize := false
	depth, inStr, esc, scalar := 0, false, false, false
	for first := true; ; first = false {
		c, err := sp.br.ReadByte()
		if err == io.EOF && scalar {
			break
		} else if err != nil {
			return nil, false, unexpected(err)
		}
		if scalar && (c == ',' || c == ']' || c == '}' || isSpace(c)) {
			sp.br.UnreadByte()
			break
		}
		if len(sp.buf) < MaxEventBytes {
			sp.buf = append(sp.buf, c)
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
				return nil, false, fmt.Errorf("event %d: unexpected %q", sp.n, c)
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
	return sp.buf, false, nil
}

func (sp *splitter) skipSpace() (byte, error) {
	for {
		c, err := sp.br.ReadByte()
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
