package sendapi

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"

	"github.com/mjrelay/mjrelay/mailjet"
)

// Limits of the Send API v3.1, as Mailjet documents them.
const (
	MaxMessagesPerCall = 50
	MaxRcptsPerField   = 50
	MaxAttachmentBytes = 15 << 20 // attachments + inlined attachments, decoded
	MaxSubjectChars    = 255
)

const maxDepth = 32 // MIME nesting we follow before giving up

// UnsupportedError says why a message cannot be carried faithfully by the
// Send API. Deliver turns it into Result{Unsupported: true}.
type UnsupportedError struct{ Reason string }

func (e *UnsupportedError) Error() string { return "not expressible over the Send API: " + e.Reason }

func unsupported(format string, args ...any) error {
	return &UnsupportedError{Reason: fmt.Sprintf(format, args...)}
}

// Converted is the Send API form of one relay message: usually one v3.1
// message; several when the envelope has no visible (To/Cc) recipient and
// each blind recipient gets its own copy. Rcpts[i] lists the indices in
// mailjet.Message.Rcpts that Messages[i] delivers to.
type Converted struct {
	Messages []Message
	Rcpts    [][]int
}

// Convert parses m.Body (RFC 5322, as the relay received it) and builds the
// v3.1 messages for m's envelope and hints. Every error is an
// *UnsupportedError: the message is left to another transport.
//
// MIME mapping: the first text/plain and the first text/html part that are
// not attachments become TextPart and HTMLPart (decoded to UTF-8, line ends
// normalised to \n); a part with a Content-ID inside multipart/related (or
// with Content-Disposition: inline) becomes an inlined attachment; every other
// leaf becomes an attachment with its exact decoded bytes (text attachments
// keep their original charset and its label in ContentType).
// multipart/signed, multipart/encrypted and S/MIME application/pkcs7-mime
// messages are refused, as is a message with no body part or over 15 MB of
// attachments.
//
// The tree is walked with go-message's textproto reader rather than
// message.Read + Entity.Walk because Entity.Walk converts every text/* part
// to UTF-8, which would transcode text attachments; each leaf is decoded with
// message.New (transfer encoding) and go-message/charset (body parts only).
func Convert(m *mailjet.Message) (*Converted, error) {
	if len(m.Rcpts) == 0 {
		return nil, unsupported("no envelope recipients")
	}
	br := bufio.NewReader(bytes.NewReader(m.Body))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, unsupported("unreadable header: %v", err)
	}
	hd, err := readHeader(h, m)
	if err != nil {
		return nil, err
	}
	w := &walker{msg: &hd.msg}
	if err := w.entity(h, br, "", 0); err != nil {
		return nil, err
	}
	if w.msg.TextPart == "" && w.msg.HTMLPart == "" && w.msg.TemplateID == 0 {
		return nil, unsupported("no text/plain or text/html body part (or it is empty)")
	}
	return split(hd, m.Rcpts)
}

// walker fills the body and attachment fields of msg.
type walker struct {
	msg     *Message
	total   int64 // attachment bytes so far
	n       int   // attachments so far, for default names
	hasText bool
	hasHTML bool
}

func (w *walker) entity(h textproto.Header, body io.Reader, parent string, depth int) error {
	if depth > maxDepth {
		return unsupported("MIME structure nested deeper than %d levels", maxDepth)
	}
	mt, params := mediaType(h)
	disp, dparams := disposition(h)
	switch {
	case mt == "multipart/signed":
		return unsupported("the message is signed (multipart/signed); the Send API rebuilds the MIME structure and would break the signature")
	case mt == "multipart/encrypted":
		return unsupported("the message is encrypted (multipart/encrypted)")
	case (mt == "application/pkcs7-mime" || mt == "application/x-pkcs7-mime") && (depth == 0 || disp != "attachment"):
		return unsupported("the message is S/MIME (%s); the Send API cannot carry it", mt)
	case strings.HasPrefix(mt, "multipart/"):
		boundary := params["boundary"]
		if boundary == "" {
			return unsupported("%s part without a boundary", mt)
		}
		mr := textproto.NewMultipartReader(body, boundary)
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return unsupported("malformed MIME structure: %v", err)
			}
			if err := w.entity(p.Header, p, mt, depth+1); err != nil {
				return err
			}
		}
	}
	data, err := decodeTransfer(h, body)
	if err != nil {
		return err
	}
	filename := paramText(dparams["filename"])
	if filename == "" {
		filename = paramText(params["name"])
	}
	isBody := (mt == "text/plain" || mt == "text/html") && disp != "attachment" && filename == ""
	switch {
	case isBody && mt == "text/plain" && !w.hasText:
		s, err := decodeText(data, params["charset"])
		if err != nil {
			return err
		}
		w.msg.TextPart, w.hasText = s, true
		return nil
	case isBody && mt == "text/html" && !w.hasHTML:
		s, err := decodeText(data, params["charset"])
		if err != nil {
			return err
		}
		w.msg.HTMLPart, w.hasHTML = s, true
		return nil
	}
	w.total += int64(len(data))
	if w.total > MaxAttachmentBytes {
		return unsupported("attachments exceed the Send API's 15 MB limit")
	}
	w.n++
	// <id> → id; a malformed one ("0<") loses its stray brackets too, which
	// the API's ContentID must not contain.
	cid := strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == '<' || r == '>' {
			return -1
		}
		return r
	}, h.Get("Content-Id")))
	a := Attachment{ContentType: attachmentType(mt, params), Filename: filename,
		Base64Content: base64.StdEncoding.EncodeToString(data)}
	if cid != "" && (parent == "multipart/related" || disp == "inline") {
		a.ContentID = cid
		if a.Filename == "" {
			a.Filename = fmt.Sprintf("inline-%d%s", w.n, extension(mt))
		}
		w.msg.InlinedAttachments = append(w.msg.InlinedAttachments, a)
		return nil
	}
	if a.Filename == "" {
		a.Filename = fmt.Sprintf("attachment-%d%s", w.n, extension(mt))
	}
	w.msg.Attachments = append(w.msg.Attachments, a)
	return nil
}

// mediaType returns the lower-case media type and its parameters. A missing
// Content-Type is text/plain (RFC 2045 §5.2); an unparseable one is treated as
// opaque data rather than as text, so that it never becomes the body.
func mediaType(h textproto.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if strings.TrimSpace(v) == "" {
		return "text/plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	switch {
	case err == nil:
	case errors.Is(err, mime.ErrInvalidMediaParameter):
		params = map[string]string{}
	default:
		return "application/octet-stream", map[string]string{}
	}
	return strings.ToLower(mt), params
}

func disposition(h textproto.Header) (string, map[string]string) {
	v := h.Get("Content-Disposition")
	if strings.TrimSpace(v) == "" {
		return "", map[string]string{}
	}
	d, params, err := mime.ParseMediaType(v)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		// Something is there but unreadable: be conservative.
		return "attachment", map[string]string{}
	}
	if params == nil {
		params = map[string]string{}
	}
	return strings.ToLower(d), params
}

// decodeTransfer undoes the Content-Transfer-Encoding only. The Content-Type
// is hidden from message.New so that text/* bodies are not converted to
// UTF-8: attachments must keep their exact bytes.
func decodeTransfer(h textproto.Header, body io.Reader) ([]byte, error) {
	hc := h.Copy()
	hc.Del("Content-Type")
	e, err := message.New(message.Header{Header: hc}, body)
	if err != nil {
		if message.IsUnknownEncoding(err) {
			return nil, unsupported("unknown Content-Transfer-Encoding %q", h.Get("Content-Transfer-Encoding"))
		}
		return nil, unsupported("cannot decode a MIME part: %v", err)
	}
	data, err := io.ReadAll(e.Body)
	if err != nil {
		return nil, unsupported("cannot decode a %s part: %v", h.Get("Content-Transfer-Encoding"), err)
	}
	return data, nil
}

// decodeText converts a body part to UTF-8 with \n line ends.
func decodeText(data []byte, label string) (string, error) {
	var s string
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		s = string(data)
	default:
		r, err := charset.Reader(label, bytes.NewReader(data))
		if err != nil {
			return "", unsupported("body in an unknown charset %q", label)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return "", unsupported("body not decodable as %q: %v", label, err)
		}
		s = string(b)
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	// CRLF is the wire form of a line end; a bare CR is not legal in a body
	// (RFC 5322 §2.3) and is read as a line end too.
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	return s, nil
}

// attachmentType is the ContentType of an attachment: the media type with
// its parameters (charset above all, method for text/calendar) except the
// file name, which travels in Filename.
func attachmentType(mt string, params map[string]string) string {
	keep := map[string]string{}
	for k, v := range params {
		if k != "name" && k != "boundary" {
			keep[k] = v
		}
	}
	if len(keep) > 0 {
		if s := mime.FormatMediaType(mt, keep); s != "" {
			return s
		}
	}
	return mt
}

// paramText decodes a file name that was sent as RFC 2047 encoded words
// (RFC 2231 encodings are already decoded by mime.ParseMediaType).
func paramText(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		}
	}
	return cleanLine(s)
}

func extension(mt string) string {
	switch mt {
	case "text/plain":
		return ".txt"
	case "text/html":
		return ".html"
	case "text/calendar":
		return ".ics"
	case "text/csv":
		return ".csv"
	case "message/rfc822":
		return ".eml"
	case "application/pdf":
		return ".pdf"
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "image/gif":
		return ".gif"
	}
	return ".bin"
}

// cleanLine makes s valid UTF-8 on one line.
func cleanLine(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
	}
	return strings.TrimSpace(s)
}
