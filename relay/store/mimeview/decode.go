package mimeview

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// splitMultipart cuts a multipart body into its parts (RFC 2046 §5.1.1):
// what lies between delimiter lines "--boundary", up to the closing
// "--boundary--" or, when that is missing, the end. The line break before
// a delimiter belongs to it. At most MaxParts+1 parts are returned.
func splitMultipart(body []byte, boundary string) [][]byte {
	delim := []byte("--" + boundary)
	var parts [][]byte
	start := -1
	for i := 0; i <= len(body) && len(parts) <= MaxParts; {
		j := bytes.IndexByte(body[i:], '\n')
		next := len(body) + 1
		line := body[i:]
		if j >= 0 {
			line, next = body[i:i+j], i+j+1
		}
		if rest, ok := bytes.CutPrefix(bytes.TrimRight(line, " \t\r"), delim); ok {
			final := bytes.HasPrefix(rest, []byte("--"))
			if len(rest) == 0 || final {
				if start >= 0 {
					end := max(i-1, start) // the line break before the delimiter
					if end > start && body[end-1] == '\r' {
						end--
					}
					parts = append(parts, body[start:end])
				}
				if final {
					return parts
				}
				start = min(next, len(body))
			}
		}
		i = next
	}
	if start >= 0 && len(parts) <= MaxParts {
		parts = append(parts, body[start:])
	}
	return parts
}

// Bytes returns the part's content with its transfer encoding undone:
// exactly the bytes of the file it carries.
func (p *Part) Bytes() ([]byte, error) {
	switch p.encoding {
	case "", "7bit", "8bit", "binary":
		return p.body, nil
	case "base64":
		// Lenient about line breaks and stray characters, as mail readers
		// are; stops at the first padding.
		return decodeBase64(p.body), nil
	}
	var h textproto.Header
	h.Set("Content-Transfer-Encoding", p.encoding)
	e, err := message.New(message.Header{Header: h}, bytes.NewReader(p.body))
	if err != nil {
		return p.body, fmt.Errorf("unknown Content-Transfer-Encoding %q: shown as sent", p.encoding)
	}
	return io.ReadAll(e.Body)
}

func decodeBase64(in []byte) []byte {
	clean := make([]byte, 0, len(in))
	for _, c := range in {
		if c == '=' {
			break
		}
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
			clean = append(clean, c)
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1] // a lone sextet is no byte
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}

// Text returns a text part's content as UTF-8 (its charset converted,
// invalid bytes replaced), line ends as \n.
func (p *Part) Text() (string, error) {
	b, err := p.Bytes()
	if err != nil {
		return "", err
	}
	switch p.Charset {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
	default:
		r, cerr := charset.Reader(p.Charset, bytes.NewReader(b))
		if cerr != nil {
			err = fmt.Errorf("unknown charset %q: shown as UTF-8", p.Charset)
			break
		}
		if d, rerr := io.ReadAll(r); rerr == nil {
			b = d
		}
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ReplaceAll(s, "\r\n", "\n"), err
}

// cidRe finds cid: URLs in HTML (in attributes and in CSS).
var cidRe = regexp.MustCompile(`(?i)\bcid:([^"'\s<>()\\]+)`)

// cidRefs are the Content-IDs an HTML body refers to (as written, and
// unescaped and lower-cased).
func cidRefs(html string) map[string]bool {
	refs := map[string]bool{}
	for _, m := range cidRe.FindAllStringSubmatch(html, MaxParts*4) {
		refs[m[1]] = true
		if u, err := url.PathUnescape(m[1]); err == nil {
			refs[u] = true
			refs[strings.ToLower(u)] = true
		}
	}
	return refs
}

// imageTypeRe are the media types InlineHTML puts in data: URLs.
var imageTypeRe = regexp.MustCompile(`^image/[a-z0-9][a-z0-9.+-]*$`)

// InlineHTML returns the HTML body with its cid: references to the
// message's own images replaced by data: URLs of their content (up to
// budget bytes of images in all), so that it shows them with nothing
// loaded from anywhere.
func (m *Message) InlineHTML(budget int64) (string, error) {
	if m.HTML == nil {
		return "", nil
	}
	html, err := m.HTML.Text()
	byCID := map[string]*Part{}
	for _, p := range m.Parts {
		if p.ContentID != "" && imageTypeRe.MatchString(p.ContentType) {
			byCID[p.ContentID] = p
			if _, ok := byCID[strings.ToLower(p.ContentID)]; !ok {
				byCID[strings.ToLower(p.ContentID)] = p
			}
		}
	}
	if len(byCID) == 0 {
		return html, err
	}
	urls := map[*Part]string{}
	out := cidRe.ReplaceAllStringFunc(html, func(ref string) string {
		id := ref[len("cid:"):]
		p := byCID[id]
		if p == nil {
			if u, uerr := url.PathUnescape(id); uerr == nil {
				if p = byCID[u]; p == nil {
					p = byCID[strings.ToLower(u)]
				}
			}
		}
		if p == nil {
			return ref
		}
		if u, ok := urls[p]; ok {
			return u
		}
		if p.Size > budget {
			return ref
		}
		b, berr := p.Bytes()
		if berr != nil {
			return ref
		}
		budget -= int64(len(b))
		u := "data:" + p.ContentType + ";base64," + base64.StdEncoding.EncodeToString(b)
		urls[p] = u
		return u
	})
	return out, err
}
