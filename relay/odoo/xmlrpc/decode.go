package xmlrpc

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// DecodeResponse reads a methodResponse document: its one value, or a
// *Fault as the error (or an error wrapping ErrSyntax).
func DecodeResponse(r io.Reader) (any, error) {
	d := newDecoder(r)
	if err := d.open("methodResponse"); err != nil {
		return nil, err
	}
	name, err := d.next()
	if err != nil {
		return nil, err
	}
	switch name {
	case "fault":
		if err := d.open("value"); err != nil {
			return nil, err
		}
		v, err := d.value(0)
		if err != nil {
			return nil, err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, d.bad("a fault must be a struct")
		}
		f := &Fault{}
		switch c := m["faultCode"].(type) {
		case int64:
			f.Code = int(c)
		case string: // Odoo's /xmlrpc (v1) writes the code as a string
			f.String = c + ": "
		}
		s, _ := m["faultString"].(string)
		f.String += s
		if err := d.closeAll("fault", "methodResponse"); err != nil {
			return nil, err
		}
		return nil, f
	case "params":
		if err := d.open("param"); err != nil {
			return nil, err
		}
		if err := d.open("value"); err != nil {
			return nil, err
		}
		v, err := d.value(0)
		if err != nil {
			return nil, err
		}
		return v, d.closeAll("param", "params", "methodResponse")
	}
	return nil, d.bad("expected <params> or <fault>, got <" + name + ">")
}

// DecodeCall reads a methodCall document: the method and its parameters.
func DecodeCall(r io.Reader) (method string, params []any, err error) {
	d := newDecoder(r)
	if err := d.open("methodCall"); err != nil {
		return "", nil, err
	}
	if err := d.open("methodName"); err != nil {
		return "", nil, err
	}
	if method, err = d.text("methodName"); err != nil {
		return "", nil, err
	}
	name, err := d.next()
	switch {
	case err != nil:
		return "", nil, err
	case name == "/methodCall":
		return method, nil, nil
	case name != "params":
		return "", nil, d.bad("expected <params>, got <" + name + ">")
	}
	for {
		name, err := d.next()
		if err != nil {
			return "", nil, err
		}
		if name == "/params" {
			break
		}
		if name != "param" {
			return "", nil, d.bad("expected <param>, got <" + name + ">")
		}
		if err := d.open("value"); err != nil {
			return "", nil, err
		}
		v, err := d.value(0)
		if err != nil {
			return "", nil, err
		}
		params = append(params, v)
		if err := d.closeAll("param"); err != nil {
			return "", nil, err
		}
	}
	return method, params, d.closeAll("methodCall")
}

// decoder walks the element structure; names are "x" for <x> and "/x"
// for </x>; character data between elements must be white space.
type decoder struct {
	x *xml.Decoder
}

func newDecoder(r io.Reader) *decoder {
	x := xml.NewDecoder(r)
	x.Strict = true
	return &decoder{x: x}
}

func (d *decoder) bad(msg string) error { return fmt.Errorf("%w: %s", ErrSyntax, msg) }

// next returns the next element boundary, skipping white space, comments
// and the XML declaration.
func (d *decoder) next() (string, error) {
	for {
		tok, err := d.x.Token()
		if err == io.EOF {
			return "", d.bad("unexpected end of document")
		}
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t.Name.Local, nil
		case xml.EndElement:
			return "/" + t.Name.Local, nil
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return "", d.bad(fmt.Sprintf("unexpected text %.40q", string(t)))
			}
		}
	}
}

func (d *decoder) open(name string) error {
	got, err := d.next()
	if err != nil {
		return err
	}
	if got != name {
		return d.bad("expected <" + name + ">, got <" + got + ">")
	}
	return nil
}

func (d *decoder) closeAll(names ...string) error {
	for _, n := range names {
		if err := d.open("/" + n); err != nil {
			return err
		}
	}
	return nil
}

// text reads character data up to </name>.
func (d *decoder) text(name string) (string, error) {
	var b strings.Builder
	for {
		tok, err := d.x.Token()
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.EndElement:
			if t.Name.Local != name {
				return "", d.bad("expected </" + name + ">")
			}
			return b.String(), nil
		case xml.StartElement:
			return "", d.bad("unexpected <" + t.Name.Local + "> in <" + name + ">")
		}
	}
}

// value reads what follows <value> up to and including </value>.
func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.bad("nested too deep")
	}
	// A <value> holds a typed element, or text (a string).
	var text strings.Builder
	for {
		tok, err := d.x.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			return text.String(), nil // untyped: a string
		case xml.StartElement:
			if strings.TrimSpace(text.String()) != "" {
				return nil, d.bad("text before <" + t.Name.Local + ">")
			}
			v, err := d.typed(t.Name.Local, depth)
			if err != nil {
				return nil, err
			}
			return v, d.closeAll("value")
		}
	}
}

func (d *decoder) typed(name string, depth int) (any, error) {
	switch name {
	case "nil":
		return nil, d.closeAll("nil")
	case "array":
		return d.array(depth)
	case "struct":
		return d.structure(depth)
	}
	s, err := d.text(name)
	if err != nil {
		return nil, err
	}
	switch name {
	case "string", "dateTime.iso8601":
		return s, nil
	case "int", "i4", "i8":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || (name != "i8" && (n < math.MinInt32 || n > math.MaxInt32)) {
			return nil, d.bad(fmt.Sprintf("bad <%s> %.20q", name, s))
		}
		return n, nil
	case "boolean":
		switch strings.TrimSpace(s) {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
		return nil, d.bad(fmt.Sprintf("bad <boolean> %.20q", s))
	case "double":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, d.bad(fmt.Sprintf("bad <double> %.20q", s))
		}
		return f, nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			return nil, d.bad("bad <base64>: " + err.Error())
		}
		return b, nil
	}
	return nil, d.bad("unknown type <" + name + ">")
}

func (d *decoder) array(depth int) (any, error) {
	if err := d.open("data"); err != nil {
		return nil, err
	}
	out := []any{}
	for {
		name, err := d.next()
		if err != nil {
			return nil, err
		}
		if name == "/data" {
			return out, d.closeAll("array")
		}
		if name != "value" {
			return nil, d.bad("expected <value> in <data>, got <" + name + ">")
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

func (d *decoder) structure(depth int) (any, error) {
	out := map[string]any{}
	for {
		name, err := d.next()
		if err != nil {
			return nil, err
		}
		if name == "/struct" {
			return out, nil
		}
		if name != "member" {
			return nil, d.bad("expected <member>, got <" + name + ">")
		}
		if err := d.open("name"); err != nil {
			return nil, err
		}
		key, err := d.text("name")
		if err != nil {
			return nil, err
		}
		if err := d.open("value"); err != nil {
			return nil, err
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out[key] = v
		if err := d.closeAll("member"); err != nil {
			return nil, err
		}
	}
}
