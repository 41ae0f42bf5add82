// Package sendapitest is test support shared by the Send API tests (of
// mailjet/sendapi and of the relay over the Send API): it builds the
// Odoo-like message corpus with Python's email library
// (mailjet/sendapi/testdata/odoo_corpus.py) and checks, field by field, what
// the Mailjet emulator received against the fields Python computed. Like
// net/http/httptest, it is for tests only: it imports testing and runs
// python3.
package sendapitest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
)

// Case is one corpus message with the fields odoo_corpus.py expects.
type Case struct {
	Name, File, ID string
	Rcpts          []string
	Hints          struct {
		Priority int
		Campaign string
	}
	Unsupported bool
	Reason      string
	Messages    []Message
}

// Addr is an expected address.
type Addr struct{ Email, Name string }

// Att is an expected attachment.
type Att struct {
	ContentType string
	Filename    *string // nil: any non-empty name
	Base64      string
	ContentID   string
}

// Message is an expected Send API message.
type Message struct {
	From, ReplyTo                   *Addr
	To, Cc, Bcc                     []Addr
	Subject, TextPart, HTMLPart     string
	Attachments, InlinedAttachments []Att
	Headers                         map[string]string
	CustomID                        string
	Priority                        *int
	CustomCampaign                  string
	DeduplicateCampaign             bool
	TrackOpens, TrackClicks         string
	EventPayload                    string
	MonitoringCategory              string
	Variables                       map[string]any
}

// LoadCorpus runs the corpus script (mailjet/sendapi/testdata/odoo_corpus.py) into
// a temporary directory and returns it with the expected fields. Without
// python3 it skips the test, or fails it when the CI variable is set.
func LoadCorpus(t testing.TB, script string) (string, []Case) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is required in CI for the Odoo corpus")
		}
		t.Skip("python3 not installed")
	}
	dir := t.TempDir()
	out, err := exec.Command(py, script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("odoo_corpus.py: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []Case
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("only %d corpus cases", len(cases))
	}
	return dir, cases
}

// CheckUnsupported: the result says the message cannot be carried, with reason.
func CheckUnsupported(t testing.TB, res mailjet.Result, reason string) {
	t.Helper()
	if !res.Unsupported || !strings.Contains(res.Reply.String(), reason) {
		t.Fatalf("Unsupported=%v Reply=%q, want unsupported with %q", res.Unsupported, res.Reply, reason)
	}
	for _, r := range res.Rcpts {
		if r.Status != mailjet.PermFail || r.Reply != res.Reply {
			t.Fatalf("recipient %s: %v %q", r.Rcpt, r.Status, r.Reply)
		}
	}
}

// CheckIDs: every recipient was delivered with the ids the emulator gave it.
func CheckIDs(t testing.TB, res mailjet.Result, sent []mjtest.APISentMessage) {
	t.Helper()
	ids := map[string]mjtest.APISentRecipient{}
	for _, s := range sent {
		for _, r := range s.Recipients {
			ids[strings.ToLower(r.Email)] = r
		}
	}
	for _, r := range res.Rcpts {
		want, ok := ids[strings.ToLower(r.Rcpt)]
		if r.Status != mailjet.Delivered || !ok || r.MessageID != want.MessageID || r.MessageUUID != want.MessageUUID || r.MessageID == 0 {
			t.Errorf("recipient %s: %v %q id %d/%s, emulator %+v", r.Rcpt, r.Status, r.Reply, r.MessageID, r.MessageUUID, want)
		}
	}
	if res.UpstreamID == "" || res.UpstreamID != res.Rcpts[0].MessageUUID {
		t.Errorf("UpstreamID %q", res.UpstreamID)
	}
	if !strings.HasSuffix(res.Upstream, "/v3.1/send") {
		t.Errorf("Upstream %q", res.Upstream)
	}
}

// CheckMessage compares one received message with the expected fields.
func CheckMessage(t testing.TB, got *mjtest.APISendMessage, want *Message) {
	t.Helper()
	eqAddr := func(field string, g *mjtest.APISendAddress, w *Addr) {
		if (g == nil) != (w == nil) || g != nil && (g.Email != w.Email || g.Name != w.Name) {
			t.Errorf("%s = %+v, want %+v", field, g, w)
		}
	}
	eqList := func(field string, g []mjtest.APISendAddress, w []Addr) {
		if len(g) != len(w) {
			t.Errorf("%s = %+v, want %+v", field, g, w)
			return
		}
		for i := range w {
			eqAddr(field, &g[i], &w[i])
		}
	}
	eqAddr("From", got.From, want.From)
	eqAddr("ReplyTo", got.ReplyTo, want.ReplyTo)
	eqList("To", got.To, want.To)
	eqList("Cc", got.Cc, want.Cc)
	eqList("Bcc", got.Bcc, want.Bcc)
	for _, f := range []struct{ name, got, want string }{
		{"Subject", got.Subject, want.Subject}, {"TextPart", got.TextPart, want.TextPart},
		{"HTMLPart", got.HTMLPart, want.HTMLPart}, {"CustomID", got.CustomID, want.CustomID},
		{"CustomCampaign", got.CustomCampaign, want.CustomCampaign},
		{"TrackOpens", got.TrackOpens, want.TrackOpens}, {"TrackClicks", got.TrackClicks, want.TrackClicks},
		{"EventPayload", got.EventPayload, want.EventPayload},
		{"MonitoringCategory", got.MonitoringCategory, want.MonitoringCategory},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if (got.Priority == nil) != (want.Priority == nil) || got.Priority != nil && *got.Priority != *want.Priority {
		t.Errorf("Priority = %v, want %v", ptrStr(got.Priority), ptrStr(want.Priority))
	}
	if got.DeduplicateCampaign != want.DeduplicateCampaign {
		t.Errorf("DeduplicateCampaign = %v", got.DeduplicateCampaign)
	}
	if !reflect.DeepEqual(got.Variables, want.Variables) {
		t.Errorf("Variables = %v, want %v", got.Variables, want.Variables)
	}
	gotHeaders := map[string]string{}
	for k, v := range got.Headers {
		s, _ := v.(string)
		gotHeaders[k] = s
	}
	if len(want.Headers) == 0 && len(gotHeaders) == 0 {
		gotHeaders = want.Headers
	}
	if !reflect.DeepEqual(gotHeaders, want.Headers) {
		t.Errorf("Headers = %q\nwant      %q", gotHeaders, want.Headers)
	}
	checkAtts(t, "Attachments", got.Attachments, want.Attachments)
	checkAtts(t, "InlinedAttachments", got.InlinedAttachments, want.InlinedAttachments)
}

func checkAtts(t testing.TB, field string, got []mjtest.APISendAttachment, want []Att) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d, want %d", field, len(got), len(want))
		return
	}
	for i, w := range want {
		g := got[i]
		data, err := g.Content()
		wdata, _ := base64.StdEncoding.DecodeString(w.Base64)
		if err != nil || !bytes.Equal(data, wdata) {
			t.Errorf("%s[%d] (%s): bytes differ (%d vs %d bytes, %v)", field, i, g.Filename, len(data), len(wdata), err)
		}
		if g.ContentType != w.ContentType || g.ContentID != w.ContentID {
			t.Errorf("%s[%d]: ContentType %q ContentID %q, want %q %q", field, i, g.ContentType, g.ContentID, w.ContentType, w.ContentID)
		}
		if w.Filename != nil && g.Filename != *w.Filename || g.Filename == "" {
			t.Errorf("%s[%d]: Filename %q, want %v", field, i, g.Filename, ptrStr(w.Filename))
		}
	}
}

func ptrStr[T any](p *T) any {
	if p == nil {
		return "<unset>"
	}
	return *p
}
