// Package mimeview reads a stored message for people to look at: its
// header fields with RFC 2047 words decoded, its MIME leaves (content type,
// file name, Content-ID, decoded size), which of them are the text and the
// HTML body, which images the HTML shows inline (cid:) and which are
// attachments. The web UI shows messages with it and the traffic stores
// count attachments with it.
//
// It works on the message's bytes in memory (parts are slices of them) and
// bounds its work on hostile input: nesting depth, number of parts, header
// bytes and fields per part. What it leaves out is said in
// Message.Problems; Parse never fails.
package mimeview

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// Bounds on what Parse reads of a message.
const (
	// MaxDepth is how deep multiparts are followed; deeper ones are shown
	// as opaque parts.
	MaxDepth = 16
	// MaxParts is how many entities (multiparts and leaves) are read.
	MaxParts = 256
	// MaxHeaderBytes bounds the message's header, MaxPartHeaderBytes a
	// part's; MaxFields the fields read of either.
	MaxHeaderBytes     = 256 << 10
	MaxPartHeaderBytes = 32 << 10
	MaxFields          = 1000
)

// Role is what a leaf is to a reader.
type Role string

// Roles.
const (
	RoleText       Role = "text"       // the text body
	RoleHTML       Role = "html"       // the HTML body
	RoleInline     Role = "inline"     // an image the HTML shows (cid:)
	RoleAttachment Role = "attachment" // everything else
)

// Message is a parsed message.
type Message struct {
	// Header is the message's header, in order.
	Header []Field
	// Parts are the leaves, in order.
	Parts []*Part
	// Text and HTML are the body parts (nil when there is none).
	Text, HTML *Part
	// Problems say what could not be read, or was left out.
	Problems []string
}

// Field is one header field.
type Field struct {
	Name string `json:"name"`
	// Value is unfolded, with RFC 2047 encoded words decoded, as valid
	// UTF-8.
	Value string `json:"value"`
	// Raw is the value as sent (unfolded), when it differs from Value.
	Raw string `json:"raw,omitempty"`
}

// Part is one leaf of the MIME tree.
type Part struct {
	// ID numbers the part as IMAP numbers sections: "1" for a single-part
	// message, "2.1" for the first part of the second part.
	ID string
	// ContentType is the media type, lower case ("application/pdf").
	ContentType string
	Charset     string
	// Disposition is "inline", "attachment" or "".
	Disposition string
	// Filename is the decoded file name ("" if none was given).
	Filename  string
	ContentID string // without <>
	Role      Role
	// Size is the number of bytes once the transfer encoding is undone.
	Size int64

	encoding string
	body     []byte // as transferred
}

// Attachments returns the parts that are attachments.
func (m *Message) Attachments() []*Part {
	var out []*Part
	for _, p := range m.Parts {
		if p.Role == RoleAttachment {
			out = append(out, p)
		}
	}
	return out
}

// Part returns the part numbered id, or nil.
func (m *Message) Part(id string) *Part {
	for _, p := range m.Parts {
		if p.ID == id {
			return p
		}
	}
	return nil
}

// Get returns the decoded value of the first header field name.
func (m *Message) Get(name string) string {
	for _, f := range m.Header {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// CountAttachments counts a message's attachments (as Parse would list
// them, without decoding the parts for their sizes).
func CountAttachments(raw []byte) int { return len(parse(raw, false).Attachments()) }

// Parse reads a message.
func Parse(raw []byte) *Message { return parse(raw, true) }

// parse reads a message; sizes: decode every part for its size.
func parse(raw []byte, sizes bool) *Message {
	p := &parser{m: &Message{}, words: &mime.WordDecoder{CharsetReader: charset.Reader}, sizes: sizes,
		br: bufio.NewReaderSize(nil, 1024)}
	h, body := p.header(raw, MaxHeaderBytes)
	p.m.Header = p.fields(h)
	p.entity(h, body, "", 0)
	p.roles()
	return p.m
}

type parser struct {
	m        *Message
	words    *mime.WordDecoder
	sizes    bool
	br       *bufio.Reader // reused for every header
	entities int
	capped   bool
}

func (p *parser) problem(format string, args ...any) {
	if len(p.m.Problems) < 20 {
		p.m.Problems = append(p.m.Problems, fmt.Sprintf(format, args...))
	}
}

// header splits an entity into its header (read, within limit bytes and
// MaxFields fields) and its body.
func (p *parser) header(entity []byte, limit int) (textproto.Header, []byte) {
	end, bodyAt := headerEnd(entity)
	hdr := entity[:end]
	if len(hdr) > limit {
		p.problem("a header of %d bytes: only the first %d are read", len(hdr), limit)
		hdr = hdr[:limit]
		if i := bytes.LastIndexByte(hdr, '\n'); i >= 0 {
			hdr = hdr[:i+1]
		}
	}
	if cut := fieldsCut(hdr, MaxFields); cut < len(hdr) {
		p.problem("a header of more than %d fields: the rest are not read", MaxFields)
		hdr = hdr[:cut]
	}
	p.br.Reset(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("\r\n\r\n")))
	h, err := textproto.ReadHeader(p.br)
	if err != nil {
		p.problem("%v", err)
	}
	return h, entity[bodyAt:]
}

// headerEnd finds the blank line that ends a header: the header is
// entity[:end], the body starts at bodyAt.
func headerEnd(entity []byte) (end, bodyAt int) {
	for i := 0; i < len(entity); {
		j := bytes.IndexByte(entity[i:], '\n')
		if j < 0 {
			return len(entity), len(entity)
		}
		line := entity[i : i+j]
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return i, i + j + 1
		}
		i += j + 1
	}
	return len(entity), len(entity)
}

// fieldsCut returns where the field numbered max+1 starts in hdr (or its
// length).
func fieldsCut(hdr []byte, max int) int {
	n := 0
	for i := 0; i < len(hdr); {
		if hdr[i] != ' ' && hdr[i] != '\t' {
			if n++; n > max {
				return i
			}
		}
		j := bytes.IndexByte(hdr[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return len(hdr)
}

// fields lists a header's fields with their values decoded.
func (p *parser) fields(h textproto.Header) []Field {
	out := []Field{}
	fs := h.Fields()
	for fs.Next() {
		raw := fs.Value()
		f := Field{Name: fs.Key(), Value: p.text(raw)}
		if name, _, ok := strings.Cut(rawLine(fs), ":"); ok {
			f.Name = strings.TrimSpace(name) // as the sender spelled it
		}
		if f.Value != raw {
			f.Raw = clean(raw)
		}
		out = append(out, f)
	}
	return out
}

func rawLine(fs textproto.HeaderFields) string {
	b, err := fs.Raw()
	if err != nil {
		return ""
	}
	return string(b[:min(len(b), 200)])
}

// text decodes RFC 2047 words and makes the result one line of valid
// UTF-8.
func (p *parser) text(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := p.words.DecodeHeader(s); err == nil {
			s = d
		}
	}
	return clean(s)
}

// clean makes s valid UTF-8 on one line, without control characters.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\r' || r == '\n':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s))
}

// entity reads one entity of the tree: a multipart is split and its parts
// read (to MaxDepth), anything else is a leaf.
func (p *parser) entity(h textproto.Header, body []byte, id string, depth int) {
	if p.entities++; p.entities > MaxParts {
		if !p.capped {
			p.capped = true
			p.problem("more than %d MIME parts: the rest are not shown", MaxParts)
		}
		return
	}
	mt, params := mediaType(h)
	if strings.HasPrefix(mt, "multipart/") {
		boundary := params["boundary"]
		switch {
		case boundary == "":
			p.problem("a %s part without a boundary is shown as data", mt)
			mt = "application/octet-stream"
		case depth >= MaxDepth:
			p.problem("MIME parts nested deeper than %d are shown as data", MaxDepth)
			mt = "application/octet-stream"
		default:
			for i, part := range splitMultipart(body, boundary) {
				ph, pb := p.header(part, MaxPartHeaderBytes)
				p.entity(ph, pb, childID(id, i+1), depth+1)
			}
			return
		}
	}
	if id == "" {
		id = "1"
	}
	leaf := &Part{ID: id, ContentType: mt, Charset: strings.ToLower(params["charset"]), body: body,
		encoding: strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))}
	disp, dparams := p.disposition(h)
	leaf.Disposition = disp
	leaf.Filename = p.filename(dparams["filename"])
	if leaf.Filename == "" {
		leaf.Filename = p.filename(params["name"])
	}
	leaf.ContentID = strings.TrimSpace(strings.Trim(strings.TrimSpace(h.Get("Content-Id")), "<>"))
	if p.sizes {
		if b, err := leaf.Bytes(); err != nil {
			p.problem("part %s: %v", id, err)
			leaf.Size = int64(len(body))
		} else {
			leaf.Size = int64(len(b))
		}
	}
	p.m.Parts = append(p.m.Parts, leaf)
}

func childID(parent string, n int) string {
	if parent == "" {
		return strconv.Itoa(n)
	}
	return parent + "." + strconv.Itoa(n)
}

// mediaType returns the lower-case media type and its parameters: a missing
// Content-Type is text/plain (RFC 2045 §5.2), an unreadable one opaque data
// (so that it never becomes a body).
func mediaType(h textproto.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if strings.TrimSpace(v) == "" {
		return "text/plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil && mt == "" {
		return "application/octet-stream", map[string]string{}
	}
	if params == nil {
		params = map[string]string{}
	}
	return strings.ToLower(mt), params
}

func (p *parser) disposition(h textproto.Header) (string, map[string]string) {
	v := strings.TrimSpace(h.Get("Content-Disposition"))
	if v == "" {
		return "", map[string]string{}
	}
	d, params, err := mime.ParseMediaType(v)
	if err != nil && d == "" {
		return "attachment", map[string]string{} // something unreadable is there
	}
	if params == nil {
		params = map[string]string{}
	}
	return strings.ToLower(d), params
}

// filename decodes a file name (RFC 2231 is decoded by ParseMediaType;
// RFC 2047 words, which clients use too, here) and keeps its last path
// element.
func (p *parser) filename(s string) string {
	s = p.text(s)
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

// roles picks the bodies (the first text/plain and text/html leaves that
// are not attachments), the images the HTML shows, and the attachments.
func (p *parser) roles() {
	m := p.m
	for _, part := range m.Parts {
		body := part.Disposition != "attachment" && part.Filename == ""
		switch {
		case body && part.ContentType == "text/plain" && m.Text == nil:
			part.Role, m.Text = RoleText, part
		case body && part.ContentType == "text/html" && m.HTML == nil:
			part.Role, m.HTML = RoleHTML, part
		}
	}
	var refs map[string]bool
	if m.HTML != nil {
		if html, err := m.HTML.Text(); err == nil {
			refs = cidRefs(html)
		}
	}
	for _, part := range m.Parts {
		if part.Role != "" {
			continue
		}
		part.Role = RoleAttachment
		if part.ContentID != "" && (refs[part.ContentID] || refs[strings.ToLower(part.ContentID)]) {
			part.Role = RoleInline
		}
	}
}
