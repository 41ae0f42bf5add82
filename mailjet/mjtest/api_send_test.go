package mjtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mailjet/mailjet-apiv3-go/v4"
)

// sendPost posts a raw body to /v3.1/send.
func sendPost(t *testing.T, a *API, method, body, user, pass string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.URL()+"/v3.1/send", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}

// sendMsg is a valid message with extra (possibly overriding) properties.
func sendMsg(extra string) string {
	m := `{"From":{"Email":"shop@example.com","Name":"Shop"},"To":[{"Email":"zoe@example.org"}],"TextPart":"hi"`
	if extra != "" {
		m += "," + extra
	}
	return m + "}"
}

func sendBody(msgs ...string) string { return `{"Messages":[` + strings.Join(msgs, ",") + `]}` }

type sendAnswer struct {
	Messages []struct {
		Status   string
		CustomID string
		Errors   []apiSendError
		To, Cc   []apiSentJSON
		Bcc      []apiSentJSON
	}
	Errors       []apiSendError
	ErrorCode    string
	ErrorMessage string
	StatusCode   int
}

func TestSendValidation(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	many := func(n int, s string) string { return strings.TrimSuffix(strings.Repeat(s+",", n), ",") }
	tests := []struct {
		name       string
		body       string
		setup      func(a *API)
		wantStatus int
		wantRoot   string     // root-level error code
		wantCodes  [][]string // per message; nil = success
		related    string     // ErrorRelatedTo of the first error, if set
	}{
		{name: "valid", body: sendBody(sendMsg("")), wantStatus: 200, wantCodes: [][]string{nil}},
		{name: "malformed JSON", body: `{"Messages":[`, wantStatus: 400, wantRoot: "mj-0002"},
		{name: "no Messages", body: `{"SandboxMode":true}`, wantStatus: 400, wantRoot: "mj-0003"},
		{name: "empty Messages", body: `{"Messages":[]}`, wantStatus: 400, wantRoot: "mj-0007"},
		{name: "Messages not an array", body: `{"Messages":{}}`, wantStatus: 400, wantRoot: "mj-0004"},
		{name: "51 messages", body: `{"Messages":[` + many(51, sendMsg("")) + `]}`, wantStatus: 400, wantRoot: "mj-0008"},
		{name: "50 messages", body: `{"Messages":[` + many(50, sendMsg("")) + `]}`, wantStatus: 200,
			wantCodes: make([][]string, 50)},
		{name: "no content", body: sendBody(sendMsg(`"TextPart":""`)), wantStatus: 400,
			wantCodes: [][]string{{"send-0003"}}, related: "HTMLPart"},
		{name: "template instead of content", body: sendBody(sendMsg(`"TextPart":"","TemplateID":123,"TemplateLanguage":true`)),
			wantStatus: 200, wantCodes: [][]string{nil}},
		{name: "forbidden headers, any case", body: sendBody(sendMsg(`"Headers":{"Date":"x","x-mailjet-prio":"3","X-Ok":"1"}`)),
			wantStatus: 400, wantCodes: [][]string{{"send-0011", "send-0011"}}},
		{name: "priority out of range", body: sendBody(sendMsg(`"Priority":4`)), wantStatus: 400,
			wantCodes: [][]string{{"mj-0005"}}, related: "Priority"},
		{name: "priority 0 is valid", body: sendBody(sendMsg(`"Priority":0`)), wantStatus: 200, wantCodes: [][]string{nil}},
		{name: "bad TrackOpens", body: sendBody(sendMsg(`"TrackOpens":"maybe"`)), wantStatus: 400, wantCodes: [][]string{{"mj-0005"}}},
		{name: "subject of 256 characters", body: sendBody(sendMsg(`"Subject":"` + strings.Repeat("é", 256) + `"`)),
			wantStatus: 400, wantCodes: [][]string{{"mj-0006"}}},
		{name: "subject of 255 characters", body: sendBody(sendMsg(`"Subject":"` + strings.Repeat("é", 255) + `"`)),
			wantStatus: 200, wantCodes: [][]string{nil}},
		{name: "dedup without campaign", body: sendBody(sendMsg(`"DeduplicateCampaign":true`)), wantStatus: 400,
			wantCodes: [][]string{{"send-0012"}}},
		{name: "51 To recipients", body: sendBody(sendMsg(`"To":[` + numberedRcpts(51) + `]`)), wantStatus: 400,
			wantCodes: [][]string{{"send-0015"}}, related: "To"},
		{name: "50 distinct To recipients, one listed twice", body: sendBody(sendMsg(`"To":[` + numberedRcpts(50) + `,{"Email":"R0@example.com"}]`)),
			wantStatus: 200, wantCodes: [][]string{nil}},
		{name: "attachment without filename, bad base64", body: sendBody(sendMsg(
			`"Attachments":[{"ContentType":"text/plain","Filename":"","Base64Content":"aGk="},{"ContentType":"a/b","Filename":"x","Base64Content":"!!"}]`)),
			wantStatus: 400, wantCodes: [][]string{{"mj-0012", "mj-0004"}}, related: "Attachments[0].Filename"},
		{name: "attachments over 15 MB", body: sendBody(sendMsg(
			`"Attachments":[{"ContentType":"a/b","Filename":"x","Base64Content":"` + b64(10<<20) + `"}],` +
				`"InlinedAttachments":[{"ContentType":"a/b","Filename":"y","ContentID":"c","Base64Content":"` + b64(5<<20+3) + `"}]`)),
			wantStatus: 400, wantCodes: [][]string{{"mj-0011"}}},
		{name: "invalid email", body: sendBody(sendMsg(`"Cc":[{"Email":"ok@example.com"},{"Email":"not an address"}]`)),
			wantStatus: 400, wantCodes: [][]string{{"mj-0013"}}, related: "Cc[1].Email"},
		{name: "missing To", body: sendBody(`{"From":{"Email":"a@example.com"},"Bcc":[{"Email":"b@example.com"}],"TextPart":"x"}`),
			wantStatus: 400, wantCodes: [][]string{{"mj-0003"}}, related: "To"},
		{name: "empty To", body: sendBody(sendMsg(`"To":[]`)), wantStatus: 400, wantCodes: [][]string{{"mj-0007"}}},
		{name: "template error reporting without template language", body: sendBody(sendMsg(`"TemplateErrorDeliver":true`)),
			wantStatus: 400, wantCodes: [][]string{{"send-0016"}}},
		{name: "type mismatch", body: sendBody(sendMsg(`"TemplateID":"abc"`)), wantStatus: 400,
			wantCodes: [][]string{{"mj-0004"}}, related: "TemplateID"},
		{name: "Sender needs enabling", body: sendBody(sendMsg(`"Sender":{"Email":"s@example.com"}`)), wantStatus: 403,
			wantCodes: [][]string{{"send-0006"}}},
		{name: "one of two fails: 400, both results in order", body: sendBody(sendMsg(`"Priority":9`), sendMsg("")),
			wantStatus: 400, wantCodes: [][]string{{"mj-0005"}, nil}},
		{name: "unauthorized sender", body: sendBody(sendMsg("")), setup: func(a *API) { a.SetSendCheckSenders(true) },
			wantStatus: 403, wantCodes: [][]string{{"send-0008"}}, related: "From"},
		{name: "sender check: inactive sender refused, active one accepted", body: sendBody(sendMsg(""),
			sendMsg(`"From":{"Email":"news@example.net"}`)), setup: func(a *API) {
			a.SetSendCheckSenders(true)
			a.AddSender("shop@example.com", APIStatusInactive, "")
			a.AddSender("*@example.net", APIStatusActive, "")
		}, wantStatus: 400, wantCodes: [][]string{{"send-0008"}, nil}},
		{name: "keys are case-insensitive", body: `{"messages":[{"from":{"email":"a@example.com"},"to":[{"email":"b@example.com"}],"htmlpart":"<p>x</p>"}]}`,
			wantStatus: 200, wantCodes: [][]string{nil}},
		{name: "Globals supply From and content", body: `{"Globals":{"From":{"Email":"g@example.com"},"TextPart":"t"},"Messages":[{"To":[{"Email":"b@example.com"}]}]}`,
			wantStatus: 200, wantCodes: [][]string{nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := apiTestServer(t)
			if tt.setup != nil {
				tt.setup(a)
			}
			status, ct, body := sendPost(t, a, http.MethodPost, tt.body, apiTestKey, apiTestSecret)
			if status != tt.wantStatus || ct != "application/json" {
				t.Fatalf("status %d %s, want %d: %.300s", status, ct, tt.wantStatus, body)
			}
			var ans sendAnswer
			if err := json.Unmarshal(body, &ans); err != nil {
				t.Fatal(err)
			}
			if tt.wantRoot != "" {
				code := ans.ErrorCode
				if len(ans.Errors) > 0 {
					code = ans.Errors[0].ErrorCode
				}
				if code != tt.wantRoot || len(ans.Messages) != 0 {
					t.Fatalf("root error %q, want %q: %s", code, tt.wantRoot, body)
				}
				return
			}
			if len(ans.Messages) != len(tt.wantCodes) {
				t.Fatalf("%d results, want %d", len(ans.Messages), len(tt.wantCodes))
			}
			succeeded := 0
			for i, want := range tt.wantCodes {
				got := ans.Messages[i]
				var codes []string
				for _, e := range got.Errors {
					codes = append(codes, e.ErrorCode)
					if e.ErrorIdentifier == "" || e.ErrorMessage == "" || e.StatusCode == 0 {
						t.Errorf("incomplete error %+v", e)
					}
				}
				if strings.Join(codes, ",") != strings.Join(want, ",") || (want == nil) != (got.Status == "success") {
					t.Fatalf("message %d: %s %v, want %v", i, got.Status, codes, want)
				}
				if want == nil {
					succeeded++
				}
			}
			if tt.related != "" && strings.Join(ans.Messages[0].Errors[0].ErrorRelatedTo, ",") != tt.related &&
				ans.Messages[0].Errors[0].ErrorRelatedTo[0] != tt.related {
				t.Fatalf("ErrorRelatedTo %v, want %s", ans.Messages[0].Errors[0].ErrorRelatedTo, tt.related)
			}
			if n := len(a.Sent()); n != succeeded {
				t.Fatalf("recorded %d messages, want %d", n, succeeded)
			}
		})
	}
}

func numberedRcpts(n int) string {
	var l []string
	for i := range n {
		l = append(l, fmt.Sprintf(`{"Email":"r%d@example.com"}`, i))
	}
	return strings.Join(l, ",")
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestSendSuccessAndRecording(t *testing.T) {
	a := apiTestServer(t)
	body := `{"Globals":{"Headers":{"X-A":"g","X-B":"g"},"Variables":{"x":1},"CustomCampaign":"camp"},"Messages":[` +
		sendMsg(`"To":[{"Email":"Zoe@example.org","Name":"Zoë"}],"Cc":[{"Email":"c@example.com"}],"Bcc":[{"Email":"zoe@example.org"},{"Email":"b@example.com"}],`+
			`"Headers":{"X-B":"m"},"CustomID":"q1","Priority":0,"Subject":"s"`) + `]}`
	status, _, raw := sendPost(t, a, http.MethodPost, body, apiTestKey, apiTestSecret)
	var ans sendAnswer
	if err := json.Unmarshal(raw, &ans); err != nil || status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	res := ans.Messages[0]
	if res.Status != "success" || res.CustomID != "q1" || len(res.To) != 1 || len(res.Cc) != 1 || len(res.Bcc) != 1 {
		t.Fatalf("a recipient listed twice must count once: %s", raw)
	}
	ids := map[int64]bool{}
	for _, r := range append(append(res.To, res.Cc...), res.Bcc...) {
		if r.MessageID < 5e17 || r.MessageID > 6e17 || ids[r.MessageID] || !uuidRE.MatchString(r.MessageUUID) ||
			!strings.HasSuffix(r.MessageHref, "/v3/REST/message/"+strconv.FormatInt(r.MessageID, 10)) {
			t.Fatalf("ids %+v", r)
		}
		ids[r.MessageID] = true
	}
	sent := a.Sent()
	if len(sent) != 1 {
		t.Fatalf("%d recorded", len(sent))
	}
	m := sent[0]
	if m.From.Name != "Shop" || m.To[0].Name != "Zoë" || m.Subject != "s" || m.Priority == nil || *m.Priority != 0 ||
		m.CustomCampaign != "camp" || m.Headers["X-A"] != "g" || m.Headers["X-B"] != "m" || m.Variables["x"] != 1.0 {
		t.Fatalf("Globals not applied or message misdecoded: %+v", m)
	}
	if len(m.Recipients) != 3 || m.Recipients[0].Field != "To" || m.Recipients[0].MessageID != res.To[0].MessageID ||
		m.Recipients[2].MessageUUID != res.Bcc[0].MessageUUID {
		t.Fatalf("recipients %+v", m.Recipients)
	}
}

func TestSendFailureModes(t *testing.T) {
	a := apiTestServer(t)
	ok := sendBody(sendMsg(""))

	a.SetRateLimited(1)
	status, ct, body := sendPost(t, a, http.MethodPost, ok, apiTestKey, apiTestSecret)
	if status != 429 || ct != "text/html" || string(body) != "Rate limit exceeded" {
		t.Fatalf("429 mode: %d %s %q", status, ct, body)
	}
	a.SetSendServerErrors(2)
	for range 2 {
		if status, _, body = sendPost(t, a, http.MethodPost, ok, apiTestKey, apiTestSecret); status != 500 || !bytes.Contains(body, []byte(`"StatusCode":500`)) {
			t.Fatalf("500 mode: %d %s", status, body)
		}
	}
	if status, _, body = sendPost(t, a, http.MethodPost, ok, apiTestKey, "wrong"); status != 401 ||
		!bytes.Contains(body, []byte("API key authentication/authorization failure")) {
		t.Fatalf("401: %d %s", status, body)
	}
	if status, _, _ = sendPost(t, a, http.MethodGet, "", apiTestKey, apiTestSecret); status != 405 {
		t.Fatalf("GET: %d", status)
	}
	if len(a.Sent()) != 0 {
		t.Fatal("a refused call recorded a message")
	}
	if status, _, _ = sendPost(t, a, http.MethodPost, ok, apiTestKey, apiTestSecret); status != 200 || len(a.Sent()) != 1 {
		t.Fatalf("after the failures: %d, %d recorded", status, len(a.Sent()))
	}
}

// TestSendWithSDK: the official SDK's SendMailV31 (which spells the root key
// "SandBoxMode") works against the emulator, sandboxed or not.
func TestSendWithSDK(t *testing.T) {
	a := apiTestServer(t)
	mj := mailjet.NewMailjetClient(apiTestKey, apiTestSecret, a.URL()+"/v3")
	info := []mailjet.InfoMessagesV31{{
		From:     &mailjet.RecipientV31{Email: "shop@example.com", Name: "Shop"},
		To:       &mailjet.RecipientsV31{{Email: "zoe@example.org"}},
		Subject:  "hello",
		TextPart: "hi",
		Headers:  map[string]any{"X-Odoo-Objects": "sale.order-1"},
	}}
	res, err := mj.SendMailV31(&mailjet.MessagesV31{Info: info, SandBoxMode: true})
	if err != nil {
		t.Fatal(err)
	}
	r := res.ResultsV31[0]
	if r.Status != "success" || r.To[0].MessageID != 0 || r.To[0].MessageUUID != "" || len(a.Sent()) != 0 {
		t.Fatalf("sandbox: %+v, %d recorded", r, len(a.Sent()))
	}
	res, err = mj.SendMailV31(&mailjet.MessagesV31{Info: info})
	if err != nil {
		t.Fatal(err)
	}
	sent := a.Sent()
	if res.ResultsV31[0].To[0].MessageID == 0 || len(sent) != 1 || sent[0].Headers["X-Odoo-Objects"] != "sale.order-1" ||
		sent[0].Recipients[0].MessageID != res.ResultsV31[0].To[0].MessageID {
		t.Fatalf("%+v / %+v", res.ResultsV31, sent)
	}
	info[0].Headers = map[string]any{"Message-Id": "<x@y>"}
	_, err = mj.SendMailV31(&mailjet.MessagesV31{Info: info})
	var fe *mailjet.APIFeedbackErrorsV31
	if !errors.As(err, &fe) || fe.Messages[0].Errors[0].ErrorCode != "send-0011" {
		t.Fatalf("forbidden header through the SDK: %v", err)
	}
}
