// Package xmlrpc is the part of XML-RPC (the protocol Odoo's
// /xmlrpc/2/common and /xmlrpc/2/object speak, as Python's xmlrpc.client
// writes it) that the relay needs, for both ends: calls and responses with
// strings, integers, booleans, doubles, base64, arrays, structs, nil and
// faults. Go values map as: string, int / int64, bool, float64, []byte
// (base64), []any (array), map[string]any (struct), nil (<nil/>). Decoding
// follows Python's reader: a <value> without a type is a string;
// dateTime.iso8601 is read as its string.
package xmlrpc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Fault is an XML-RPC fault: the server ran the call and refused it.
type Fault struct {
	Code   int
	String string
}

func (f *Fault) Error() string {
	s := f.String
	if i := strings.IndexByte(s, '\n'); i >= 0 && len(s) > 300 {
		s = s[:i] // a traceback: its first line
	}
	return fmt.Sprintf("XML-RPC fault %d: %s", f.Code, s)
}

// ErrSyntax wraps every error about a malformed document.
var ErrSyntax = errors.New("xmlrpc: malformed document")

// maxDepth bounds the nesting of arrays and structs a decoder accepts.
const maxDepth = 32

// EncodeCall writes a methodCall document.
func EncodeCall(method string, params ...any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\n<methodCall><methodName>")
	xml.EscapeText(&b, []byte(method))
	b.WriteString("</methodName><params>")
	for _, p := range params {
		b.WriteString("<param>")
		if err := encodeValue(&b, p, 0); err != nil {
			return nil, err
		}
		b.WriteString("</param>")
	}
	b.WriteString("</params></methodCall>\n")
	return b.Bytes(), nil
}

// EncodeResponse writes a methodResponse document holding v.
func EncodeResponse(v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\n<methodResponse><params><param>")
	if err := encodeValue(&b, v, 0); err != nil {
		return nil, err
	}
	b.WriteString("</param></params></methodResponse>\n")
	return b.Bytes(), nil
}

// EncodeFault writes a methodResponse document holding a fault.
func EncodeFault(f Fault) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\n<methodResponse><fault>")
	encodeValue(&b, map[string]any{"faultCode": f.Code, "faultString": f.String}, 0)
	b.WriteString("</fault></methodResponse>\n")
	return b.Bytes()
}

func encodeValue(b *bytes.Buffer, v any, depth int) error {
	if depth > maxDepth {
		return errors.New("xmlrpc: value nested too deep")
	}
	b.WriteString("<value>")
	switch x := v.(type) {
	case nil:
		b.WriteString("<nil/>")
	case string:
		b.WriteString("<string>")
		xml.EscapeText(b, []byte(x)) // characters XML cannot carry become U+FFFD
		b.WriteString("</string>")
	case int:
		if err := encodeInt(b, int64(x)); err != nil {
			return err
		}
	case int64:
		if err := encodeInt(b, x); err != nil {
			return err
		}
	case bool:
		if x {
			b.WriteString("<boolean>1</boolean>")
		} else {
			b.WriteString("<boolean>0</boolean>")
		}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return errors.New("xmlrpc: a double must be finite")
		}
		b.WriteString("<double>" + strconv.FormatFloat(x, 'f', -1, 64) + "</double>")
	case []byte:
		b.WriteString("<base64>" + base64.StdEncoding.EncodeToString(x) + "</base64>")
	case []any:
		b.WriteString("<array><data>")
		for _, e := range x {
			if err := encodeValue(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteString("</data></array>")
	case []string:
		b.WriteString("<array><data>")
		for _, e := range x {
			encodeValue(b, e, depth+1)
		}
		b.WriteString("</data></array>")
	case []int:
		b.WriteString("<array><data>")
		for _, e := range x {
			encodeValue(b, e, depth+1)
		}
		b.WriteString("</data></array>")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("<struct>")
		for _, k := range keys {
			b.WriteString("<member><name>")
			xml.EscapeText(b, []byte(k))
			b.WriteString("</name>")
			if err := encodeValue(b, x[k], depth+1); err != nil {
				return err
			}
			b.WriteString("</member>")
		}
		b.WriteString("</struct>")
	default:
		return fmt.Errorf("xmlrpc: cannot encode %T", v)
	}
	b.WriteString("</value>")
	return nil
}

// encodeInt writes an int; XML-RPC's <int> is 32 bits (Python's writer
// refuses larger ones too).
func encodeInt(b *bytes.Buffer, n int64) error {
	if n < math.MinInt32 || n > math.MaxInt32 {
		return fmt.Errorf("xmlrpc: int %d out of 32-bit range", n)
	}
	b.WriteString("<int>" + strconv.FormatInt(n, 10) + "</int>")
	return nil
}

// HTTPError is an answer that is not an XML-RPC document: the server (or
// a proxy in front of it) refused the request at the HTTP level.
type HTTPError struct {
	Status int
	Body   string // the first bytes, for the log
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
}

// maxResponse bounds a response the client reads.
const maxResponse = 16 << 20

// Call posts a methodCall to url and decodes the response: its value, a
// *Fault, an *HTTPError, a network error, or an error wrapping ErrSyntax.
func Call(ctx context.Context, hc *http.Client, url, method string, params ...any) (any, error) {
	body, err := EncodeCall(method, params...)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "mjrelay")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := io.LimitReader(resp.Body, maxResponse)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(r, 300))
		return nil, &HTTPError{Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	return DecodeResponse(r)
}
