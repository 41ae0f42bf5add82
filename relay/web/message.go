package web

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/mimeview"
)

type messageData struct {
	M        *store.Message
	CanQueue bool
	// Subject and From are the header's, decoded, when the body is kept
	// (the store's otherwise).
	Subject, From string
	C             *content
	View          string
	Views         []messageView
	Attachments   []*mimeview.Part
	// BodyURL is the sandboxed frame's source; Remote tells whether it
	// loads remote images, RemoteURL toggles that.
	BodyURL, RemoteURL string
	Remote             bool
	Text, Raw          string
	TextCut, RawCut    bool
}

// messageView is one tab of the message's content.
type messageView struct {
	Name, Label, URL string
}

func (s *Server) messagePage(w http.ResponseWriter, r *http.Request) {
	m, c, ok := s.messageAndContent(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	d := messageData{M: m, C: c, CanQueue: s.d.Queue != nil && store.Pending(m.State), Subject: m.Subject,
		From: m.HeaderFrom, Remote: q.Get("images") == "remote"}
	base := "/messages/" + url.PathEscape(m.ID)
	if c.Kept {
		mm := c.MIME
		if v := mm.Get("Subject"); v != "" {
			d.Subject = v
		}
		if v := mm.Get("From"); v != "" {
			d.From = v
		}
		d.Attachments = mm.Attachments()
		if mm.HTML != nil {
			d.Views = append(d.Views, messageView{"html", "HTML", base + "?view=html#content"})
		}
		if mm.Text != nil {
			d.Views = append(d.Views, messageView{"text", "Text", base + "?view=text#content"})
		}
		d.Views = append(d.Views, messageView{"headers", "Headers", base + "?view=headers#content"},
			messageView{"raw", "Raw source", base + "?view=raw#content"})
		d.View = d.Views[0].Name
		for _, v := range d.Views {
			if v.Name == q.Get("view") {
				d.View = v.Name
			}
		}
		switch d.View {
		case "html":
			d.BodyURL, d.RemoteURL = base+"/body", base+"?view=html&images=remote#content"
			if d.Remote {
				d.BodyURL, d.RemoteURL = base+"/body?images=remote", base+"?view=html#content"
			}
		case "text":
			d.Text, _ = mm.Text.Text()
			d.Text, d.TextCut = cut(d.Text, maxTextShown)
		case "raw":
			d.Raw, d.RawCut = cut(string(c.Raw), maxRawShown)
		}
	}
	s.render(w, r, http.StatusOK, "message", d.Subject, d)
}

// cut clips s to at most n bytes of valid UTF-8.
func cut(s string, n int) (string, bool) {
	clipped := len(s) > n
	if clipped {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "\uFFFD"), clipped
}

func (s *Server) messageAndContent(w http.ResponseWriter, r *http.Request) (*store.Message, *content, bool) {
	m, c, err := s.messageContent(r.Context(), r.PathValue("id"))
	switch {
	case err == nil:
		return m, c, true
	case errors.Is(err, store.ErrNotFound):
		s.errorPage(w, r, http.StatusNotFound, "No message with this id in the traffic store (it may have been pruned after store.retention).")
		return nil, nil, false
	}
	s.log.Error("message detail failed", "err", err)
	s.errorPage(w, r, http.StatusInternalServerError, "The traffic store could not be read; see the relay's log.")
	return nil, nil, false
}

// bodyCSP is the HTML body's policy: nothing but its own styles and the
// images it carries (data: URLs), never a script, a form, a font or a
// frame; sandboxed even when opened on its own; framed by the UI only.
// With remote images allowed, images may come from anywhere, and nothing
// else may.
func bodyCSP(remote bool) string {
	img := "data:"
	if remote {
		img += " http: https:"
	}
	return "default-src 'none'; img-src " + img + "; style-src 'unsafe-inline'; font-src data:; base-uri 'none'; " +
		"form-action 'none'; frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
}

// headRe finds where a document's head starts, for the <base> element.
var headRe = regexp.MustCompile(`(?i)<head(\s[^>]*)?>`)

// messageBody serves a message's HTML body for the message page's
// sandboxed frame (bodyCSP): its inline images as data: URLs, its links
// opening a new tab.
func (s *Server) messageBody(w http.ResponseWriter, r *http.Request) {
	_, c, ok := s.messageAndContent(w, r)
	if !ok {
		return
	}
	if !c.Kept || c.MIME.HTML == nil {
		s.errorPage(w, r, http.StatusNotFound, "This message has no HTML body here.")
		return
	}
	html, err := c.MIME.InlineHTML(maxInlineImages)
	if err != nil {
		s.log.Debug("message body shown with a problem", "err", err)
	}
	if !utf8.ValidString(html) {
		html = strings.ToValidUTF8(html, "\uFFFD")
	}
	const base = `<base target="_blank">`
	if loc := headRe.FindStringIndex(html); loc != nil {
		html = html[:loc[1]] + base + html[loc[1]:]
	} else {
		html = base + html
	}
	h := w.Header()
	h.Set("Content-Security-Policy", bodyCSP(r.URL.Query().Get("images") == "remote"))
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("X-DNS-Prefetch-Control", "off")
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte(html))
}
