package web

import (
	"bytes"
	"mime"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/mimeview"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

type partJSON struct {
	ID          string `json:"id"`
	ContentType string `json:"content_type"`
	Charset     string `json:"charset"`
	Filename    string `json:"filename"`
	ContentID   string `json:"content_id"`
	Role        string `json:"role"`
	Size        int64  `json:"size"`
	URL         string `json:"url"`
}

type contentJSON struct {
	ID   string `json:"id"`
	Body struct {
		Kept bool   `json:"kept"`
		Note string `json:"note"`
	} `json:"body"`
	Headers     []mimeview.Field `json:"headers"`
	Parts       []partJSON       `json:"parts"`
	Attachments []partJSON       `json:"attachments"`
	UpstreamIDs []string         `json:"upstream_ids"`
}

// TestAPIMessageContent: GET /api/messages/{id} has the message's headers
// (decoded), parts and attachments, with the routes to fetch each.
func TestAPIMessageContent(t *testing.T) {
	e := newEnv(t)
	id, rich := e.addRich(t, t0.Add(time.Minute), "https://t.example/p.gif", "https://t.example/ran", "4XqZ9k1aB2")
	w := e.do(t, "GET", "/api/messages/"+id, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var m contentJSON
	unmarshal(t, w.Body.Bytes(), &m)
	if !m.Body.Kept || m.Body.Note != "" {
		t.Errorf("body %+v", m.Body)
	}
	if i := slices.IndexFunc(m.Headers, func(f mimeview.Field) bool { return f.Name == "Subject" }); i < 0 ||
		m.Headers[i].Value != rich.Subject || !strings.HasPrefix(m.Headers[i].Raw, "=?utf-8?b?") {
		t.Errorf("headers %+v: want the subject decoded, and as sent", m.Headers)
	}
	var parts []string
	for _, p := range m.Parts {
		parts = append(parts, p.ID+" "+p.ContentType+" "+p.Role)
	}
	if want := []string{"1.1.1 text/plain text", "1.1.2 text/html html", "1.2 image/png inline", "2 application/pdf attachment"}; !slices.Equal(parts, want) {
		t.Errorf("parts %v, want %v", parts, want)
	}
	if len(m.Attachments) != 1 {
		t.Fatalf("attachments %+v", m.Attachments)
	}
	a := m.Attachments[0]
	if a.Filename != rich.PDFName || a.ContentType != "application/pdf" || a.Size != int64(len(rich.PDF)) ||
		a.URL != "/api/messages/"+id+"/attachments/"+rich.PDFPart {
		t.Errorf("attachment %+v", a)
	}
	if !slices.Equal(m.UpstreamIDs, []string{"4XqZ9k1aB2"}) {
		t.Errorf("upstream ids %v", m.UpstreamIDs)
	}

	tests := []struct {
		name, path string
		code       int
		body       []byte
		ctype      string
	}{
		{"attachment", a.URL, 200, rich.PDF, "application/pdf"},
		{"the same part", "/api/messages/" + id + "/parts/" + rich.PDFPart, 200, rich.PDF, "application/pdf"},
		{"inline image", "/api/messages/" + id + "/parts/" + rich.PNGPart, 200, rich.PNG, "image/png"},
		{"text part, as sent", "/api/messages/" + id + "/parts/1.1.1", 200, []byte(strings.ReplaceAll(strings.ReplaceAll(rich.Text, "é", "\xe9"), "\n", "\r\n")),
			"text/plain; charset=iso-8859-1"},
		{"HTML part is no attachment", "/api/messages/" + id + "/attachments/1.1.2", 404, nil, ""},
		{"no such part", "/api/messages/" + id + "/parts/7.7", 404, nil, ""},
		{"no such message", "/api/messages/nope/parts/1", 404, nil, ""},
		{"body not kept", "/api/messages/" + e.smp.IDs["newsletter"] + "/parts/1", 404, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := e.do(t, "GET", tc.path, nil)
			if w.Code != tc.code {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tc.code)
			}
			if tc.code != 200 {
				return
			}
			h := w.Header()
			if !bytes.Equal(w.Body.Bytes(), tc.body) || h.Get("Content-Type") != tc.ctype {
				t.Errorf("%s: %d bytes %q, want %d bytes", h.Get("Content-Type"), w.Body.Len(), w.Body.Bytes()[:min(40, w.Body.Len())], len(tc.body))
			}
			if d, params, err := mime.ParseMediaType(h.Get("Content-Disposition")); err != nil || d != "attachment" || params["filename"] == "" {
				t.Errorf("Content-Disposition %q", h.Get("Content-Disposition"))
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
				t.Errorf("headers %v", h)
			}
		})
	}
	if _, p, _ := mime.ParseMediaType(e.do(t, "GET", a.URL, nil).Header().Get("Content-Disposition")); p["filename"] != rich.PDFName {
		t.Errorf("download named %q, want %q", p["filename"], rich.PDFName)
	}
}

// TestNotKept: a message without its body says why, in the API and on
// the page.
func TestNotKept(t *testing.T) {
	refused := func(e *env) string { return e.ids(t, store.Filter{State: "refused"})[0] }
	tests := []struct {
		name string
		opts []envOpt
		id   func(*env) string
		want string
	}{
		{"bodies off", []envOpt{withoutBodies}, func(e *env) string { return e.smp.IDs["invoice"] }, "store.keep_bodies = 0"},
		{"pruned", nil, func(e *env) string { return e.smp.IDs["newsletter"] }, "no longer kept"},
		{"refused", nil, refused, "never stored its body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			id := tc.id(e)
			var m contentJSON
			unmarshal(t, e.do(t, "GET", "/api/messages/"+id, nil).Body.Bytes(), &m)
			if m.Body.Kept || !strings.Contains(m.Body.Note, tc.want) || m.Headers == nil || m.Parts == nil || m.Attachments == nil {
				t.Errorf("API: %+v", m)
			}
			if page := e.do(t, "GET", "/messages/"+id, nil).Body.String(); !strings.Contains(page, tc.want) {
				t.Errorf("the page does not say %q", tc.want)
			}
		})
	}
}

// TestMessageBodyRoute: the HTML body is served for a sandboxed frame,
// under a policy that allows no script, and remote images only when asked.
func TestMessageBodyRoute(t *testing.T) {
	e := newEnv(t)
	id, _ := e.addRich(t, t0.Add(time.Minute), "https://tracker.example/p.gif", "https://tracker.example/ran", "x1")
	page := e.do(t, "GET", "/messages/"+id, nil)
	if !strings.Contains(page.Body.String(), `<iframe id="body-frame" class="body" src="/messages/`+id+`/body" sandbox="allow-popups allow-popups-to-escape-sandbox"`) {
		t.Errorf("the page does not frame the body sandboxed")
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("the page's policy changed: %s", csp)
	}
	for _, tc := range []struct {
		query, img string
	}{{"", "img-src data:;"}, {"?images=remote", "img-src data: http: https:;"}} {
		w := e.do(t, "GET", "/messages/"+id+"/body"+tc.query, nil)
		csp := w.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", tc.img, "sandbox allow-popups", "frame-ancestors 'self'", "form-action 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: policy %q lacks %q", tc.query, csp, want)
			}
		}
		if strings.Contains(csp, "script") || strings.Contains(csp, "allow-scripts") || strings.Contains(csp, "allow-same-origin") {
			t.Errorf("%s: policy %q lets something run", tc.query, csp)
		}
		if w.Header().Get("X-Frame-Options") != "SAMEORIGIN" {
			t.Errorf("X-Frame-Options %q", w.Header().Get("X-Frame-Options"))
		}
		body := w.Body.String()
		if !strings.Contains(body, `src="data:image/png;base64,`) || strings.Contains(body, "cid:logo") || !strings.Contains(body, `<head><base target="_blank">`) {
			t.Errorf("%s: body %.300s", tc.query, body)
		}
	}
	if w := e.do(t, "GET", "/messages/"+e.smp.IDs["newsletter"]+"/body", nil); w.Code != http.StatusNotFound {
		t.Errorf("a message without a body: %d", w.Code)
	}
}

// TestContentEscaping: what a message holds is shown, never interpreted:
// its header fields, text, raw source and attachment names.
func TestContentEscaping(t *testing.T) {
	e := newEnv(t)
	raw := "From: \"<img src=x onerror=alert(1)>\" <a@b.example>\r\nSubject: <script>alert(1)</script>\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n<script>alert(2)</script>\r\n" +
		"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"<script>x.pdf\"\r\n\r\nx\r\n--b--\r\n"
	id := storetest.QueueID(t0.Add(time.Minute), 99)
	e.record(t, storetest.NewFlow(t0.Add(time.Minute), id, "a@b.example", []string{"c@d.example"}, "<script>alert(1)</script>").
		Received([]byte(raw)).Events()...)
	for _, view := range []string{"text", "headers", "raw"} {
		body := e.do(t, "GET", "/messages/"+id+"?view="+view, nil).Body.String()
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") || strings.Contains(body, "<script>x.pdf") {
			t.Errorf("%s: markup from the message is in the page", view)
		}
		if !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("%s: the message's markup is not shown as text", view)
		}
	}
}

func TestDownloadName(t *testing.T) {
	for _, tc := range []struct{ in, ct, want string }{
		{"invoice.pdf", "application/pdf", "invoice.pdf"},
		{`../../etc/"pass"wd`, "text/plain", `_.._etc__pass_wd`},
		{"a\r\nb\x00.txt", "text/plain", "a__b_.txt"},
		{"", "application/pdf", "part-2-1.pdf"},
		{"...", "application/x-unknown-thing", "part-2-1.bin"},
		{strings.Repeat("é", 300) + ".pdf", "application/pdf", strings.Repeat("é", 146) + ".pdf"},
	} {
		if got := downloadName(&mimeview.Part{ID: "2.1", Filename: tc.in, ContentType: tc.ct}); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}
