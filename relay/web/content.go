package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/mimeview"
)

// Bounds on what the UI shows of a message.
const (
	// maxParsedBytes: a stored message larger than this is offered for
	// download only (the relay's own size limit is far below).
	maxParsedBytes = 64 << 20
	// maxRawShown and maxTextShown bound the raw source and the text part
	// shown in the page; the download has everything.
	maxRawShown  = 512 << 10
	maxTextShown = 1 << 20
	// maxInlineImages bounds the images put into the HTML body as data:
	// URLs.
	maxInlineImages = 16 << 20
)

// content is a message's body as the UI and the API show it.
type content struct {
	// Kept: the store has the message's bytes; Note says why not.
	Kept bool
	Note string
	Raw  []byte
	MIME *mimeview.Message
}

// messageContent returns a message and its content.
func (s *Server) messageContent(ctx context.Context, id string) (*store.Message, *content, error) {
	m, err := s.d.Store.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.loadContent(ctx, m)
	if err != nil {
		return nil, nil, err
	}
	return m, c, nil
}

// loadContent reads and parses the stored bytes of m.
func (s *Server) loadContent(ctx context.Context, m *store.Message) (*content, error) {
	c := &content{}
	r, size, err := s.d.Store.Raw(ctx, m.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.Note = s.notKept(m)
		return c, nil
	case err != nil:
		return nil, err
	case size > maxParsedBytes:
		c.Note = fmt.Sprintf("The message is %s: too large to show here; download the raw message.", humanBytes(size))
		return c, nil
	}
	if c.Raw, err = io.ReadAll(io.LimitReader(r, maxParsedBytes)); err != nil {
		return nil, err
	}
	c.Kept, c.MIME = true, mimeview.Parse(c.Raw)
	return c, nil
}

// notKept says why a message's body is not there.
func (s *Server) notKept(m *store.Message) string {
	switch {
	case m.State == store.StateRefused:
		return "The message was refused: the relay never stored its body."
	case !s.d.Store.WantsBodies():
		return "This relay does not keep message bodies (store.keep_bodies = 0): only the envelope and the fields above were recorded."
	case m.FinalAt != nil:
		return "The body is no longer kept: raw messages are removed store.keep_bodies after the message left the queue (or it was not recorded)."
	}
	return "The body was not recorded (the traffic store had too many bodies waiting when it arrived)."
}

// partDoc is a MIME part in the API.
type partDoc struct {
	ID          string        `json:"id"`
	ContentType string        `json:"content_type"`
	Charset     string        `json:"charset,omitempty"`
	Disposition string        `json:"disposition,omitempty"`
	Filename    string        `json:"filename,omitempty"`
	ContentID   string        `json:"content_id,omitempty"`
	Role        mimeview.Role `json:"role"`
	Size        int64         `json:"size"`
	URL         string        `json:"url"`
}

func partDocs(id string, ps []*mimeview.Part, route string) []partDoc {
	out := []partDoc{}
	for _, p := range ps {
		out = append(out, partDoc{ID: p.ID, ContentType: p.ContentType, Charset: p.Charset, Disposition: p.Disposition,
			Filename: p.Filename, ContentID: p.ContentID, Role: p.Role, Size: p.Size,
			URL: "/api/messages/" + url.PathEscape(id) + "/" + route + "/" + p.ID})
	}
	return out
}

// tokenRe is a media type the relay repeats in a Content-Type it serves.
var tokenRe = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$`)

// servePart sends a part's decoded bytes as a download: never shown by
// the browser in the UI's origin (Content-Disposition: attachment, nosniff,
// and a sandboxing Content-Security-Policy should it be opened anyway).
func (s *Server) servePart(w http.ResponseWriter, r *http.Request, attachmentsOnly bool) {
	m, c, err := s.messageContent(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !c.Kept {
		jsonError(w, http.StatusNotFound, c.Note)
		return
	}
	p := c.MIME.Part(r.PathValue("part"))
	if p == nil || (attachmentsOnly && p.Role != mimeview.RoleAttachment) {
		jsonError(w, http.StatusNotFound, "no such part")
		return
	}
	b, err := p.Bytes()
	if err != nil {
		s.log.Warn("a MIME part is served as sent", "id", m.ID, "part", p.ID, "err", err)
	}
	ct := "application/octet-stream"
	if tokenRe.MatchString(p.ContentType) {
		ct = p.ContentType
		if p.Charset != "" && strings.HasPrefix(ct, "text/") {
			if v := mime.FormatMediaType(ct, map[string]string{"charset": p.Charset}); v != "" {
				ct = v
			}
		}
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": downloadName(p)})
	if disp == "" {
		disp = "attachment" // never shown in the page's origin, whatever the name
	}
	h.Set("Content-Disposition", disp)
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Content-Length", fmt.Sprint(len(b)))
	w.Write(b)
}

// downloadName is a part's file name made safe to save: no directory, no
// control or quoting characters, a bounded length.
func downloadName(p *mimeview.Part) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f, strings.ContainsRune(`/\"*?<>|:`, r):
			return '_'
		}
		return r
	}, p.Filename)
	name = strings.Trim(strings.TrimSpace(name), ".")
	if r := []rune(name); len(r) > 150 {
		name = string(r[len(r)-150:])
	}
	if name == "" {
		name = "part-" + strings.ReplaceAll(p.ID, ".", "-") + extension(p.ContentType)
	}
	return name
}

func extension(mt string) string {
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}
