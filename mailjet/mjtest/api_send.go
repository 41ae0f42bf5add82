package mjtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"sync"
)

// The Send API v3.1 (POST /v3.1/send), following Mailjet's documentation:
// Basic auth (checked by serveHTTP, like the REST side), keys decoded
// case-insensitively (the SDK sends "SandBoxMode"), Globals merged into each
// message (message properties win; Headers and Variables are merged key by
// key), per-message validation with the documented error codes, results in
// request order, HTTP 400 when any message failed (403 when every failure is
// a 403 such as send-0008), SandboxMode (MessageID 0, empty MessageUUID,
// nothing recorded). Rate limiting (429 text/html), 503 and dropped
// connections come from the API's shared failure modes (SetRateLimited,
// SetDown, SetDropConnections); SetSendServerErrors adds 500s.
//
// Emulator assumptions where the reference is silent: To is mandatory
// (mj-0003 when absent, mj-0007 when empty); an invalid Base64Content is a
// type mismatch (mj-0004); more than 15 MB of attachments is mj-0011; the
// Sender property is refused with send-0006 (not enabled for the account);
// any TemplateID is accepted.

const (
	apiSendPath     = "/v3.1/send"
	apiSendMaxBody  = 64 << 20
	apiSendMaxMsgs  = 50
	apiSendMaxRcpts = 50
	apiSendMaxAtt   = 15 << 20
)

// APISendAddress is a v3.1 {"Email", "Name"} object.
type APISendAddress struct{ Email, Name string }

// APISendAttachment is an entry of Attachments or InlinedAttachments.
type APISendAttachment struct{ ContentType, Filename, ContentID, Base64Content string }

// Content decodes Base64Content.
func (a APISendAttachment) Content() ([]byte, error) {
	return base64.StdEncoding.DecodeString(a.Base64Content)
}

// APISendMessage is one v3.1 message as the emulator decoded it, Globals
// applied.
type APISendMessage struct {
	From, Sender, ReplyTo           *APISendAddress
	To, Cc, Bcc                     []APISendAddress
	Subject, TextPart, HTMLPart     string
	TemplateID                      int64
	TemplateLanguage                bool
	TemplateErrorReporting          *APISendAddress
	TemplateErrorDeliver            bool
	Attachments, InlinedAttachments []APISendAttachment
	Priority                        *int
	CustomCampaign                  string
	DeduplicateCampaign             bool
	TrackOpens, TrackClicks         string
	CustomID, EventPayload          string
	MonitoringCategory, URLTags     string
	Headers, Variables              map[string]any
}

// APISentRecipient is one recipient of an accepted message, with the ids the
// emulator answered.
type APISentRecipient struct {
	Email       string
	Field       string // "To", "Cc" or "Bcc"
	MessageID   int64
	MessageUUID string
}

// APISentMessage is a message /v3.1/send accepted (outside SandboxMode).
type APISentMessage struct {
	APISendMessage
	Recipients []APISentRecipient
}

// apiSendState is the Send API's part of an API (the API.send field).
type apiSendState struct {
	mu           sync.Mutex
	sent         []APISentMessage
	serverErrors int
	checkSenders bool
	nextID       int64
}

func newAPISendState() *apiSendState {
	var b [8]byte
	_, _ = rand.Read(b[:])
	// Real MessageIDs are int64 around 5.7e17.
	return &apiSendState{nextID: 576460752303423488 + int64(binary.BigEndian.Uint64(b[:])%(1<<40))}
}

func (a *API) sendState() *apiSendState { return a.send }

// Sent returns a copy of the messages /v3.1/send accepted, in order.
func (a *API) Sent() []APISentMessage {
	st := a.sendState()
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]APISentMessage(nil), st.sent...)
}

// SetSendServerErrors makes the next n calls to /v3.1/send (after
// authentication) fail with HTTP 500 and a JSON error.
func (a *API) SetSendServerErrors(n int) {
	st := a.sendState()
	st.mu.Lock()
	st.serverErrors = n
	st.mu.Unlock()
}

// SetSendCheckSenders makes /v3.1/send refuse (send-0008, 403) a From
// address that no Active sender matches, by address or as *@domain. Off by
// default: real Mailjet may accept the message and hold it.
func (a *API) SetSendCheckSenders(on bool) {
	st := a.sendState()
	st.mu.Lock()
	st.checkSenders = on
	st.mu.Unlock()
}

// apiSendError is one entry of Errors.
type apiSendError struct {
	ErrorIdentifier string   `json:"ErrorIdentifier"`
	ErrorCode       string   `json:"ErrorCode"`
	StatusCode      int      `json:"StatusCode"`
	ErrorMessage    string   `json:"ErrorMessage"`
	ErrorRelatedTo  []string `json:"ErrorRelatedTo"`
}

func apiSendErr(code string, status int, msg string, related ...string) apiSendError {
	if related == nil {
		related = []string{}
	}
	return apiSendError{ErrorIdentifier: apiSendUUID(), ErrorCode: code, StatusCode: status,
		ErrorMessage: msg, ErrorRelatedTo: related}
}

type apiSentJSON struct {
	Email       string `json:"Email"`
	MessageUUID string `json:"MessageUUID"`
	MessageID   int64  `json:"MessageID"`
	MessageHref string `json:"MessageHref"`
}

type apiSendResultJSON struct {
	Status   string         `json:"Status"`
	Errors   []apiSendError `json:"Errors,omitempty"`
	CustomID *string        `json:"CustomID,omitempty"`
	To       []apiSentJSON  `json:"To,omitempty"`
	Cc       []apiSentJSON  `json:"Cc,omitempty"`
	Bcc      []apiSentJSON  `json:"Bcc,omitempty"`
}

// serveSend serves POST /v3.1/send; serveHTTP has checked the credentials.
func (a *API) serveSend(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		a.writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return
	}
	st := a.sendState()
	st.mu.Lock()
	fail := st.serverErrors > 0
	if fail {
		st.serverErrors--
	}
	st.mu.Unlock()
	if fail {
		a.writeJSON(w, http.StatusInternalServerError, map[string]any{
			"ErrorIdentifier": apiSendUUID(), "ErrorMessage": "Internal Server Error", "StatusCode": 500})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, apiSendMaxBody))
	if err != nil {
		a.writeJSON(w, http.StatusRequestEntityTooLarge, apiSendErr("mj-0011", 413, "Payload too large."))
		return
	}
	var root map[string]json.RawMessage
	if err := json.Unmarshal(body, &root); err != nil || root == nil {
		a.writeJSON(w, http.StatusBadRequest, apiSendErr("mj-0002", 400,
			"Malformed JSON, please review the syntax and properties types."))
		return
	}
	rootL := apiLowerKeys(root)
	rootErr := func(e apiSendError) {
		a.writeJSON(w, http.StatusBadRequest, map[string]any{"Errors": []apiSendError{e}, "Messages": []any{}})
	}
	var msgs []json.RawMessage
	var sandbox bool
	var globals map[string]json.RawMessage
	switch {
	case rootL["messages"] == nil:
		rootErr(apiSendErr("mj-0003", 400, "Missing mandatory property.", "Messages"))
		return
	case json.Unmarshal(rootL["messages"], &msgs) != nil:
		rootErr(apiSendErr("mj-0004", 400, `Type mismatch. Expected type "Messages".`, "Messages"))
		return
	case len(msgs) == 0:
		rootErr(apiSendErr("mj-0007", 400, "Empty array.", "Messages"))
		return
	case len(msgs) > apiSendMaxMsgs:
		rootErr(apiSendErr("mj-0008", 400, "Too many elements.", "Messages"))
		return
	case rootL["sandboxmode"] != nil && json.Unmarshal(rootL["sandboxmode"], &sandbox) != nil:
		rootErr(apiSendErr("mj-0004", 400, `Type mismatch. Expected type "bool".`, "SandboxMode"))
		return
	case rootL["globals"] != nil && (json.Unmarshal(rootL["globals"], &globals) != nil || globals == nil):
		rootErr(apiSendErr("mj-0004", 400, `Type mismatch. Expected type "Globals".`, "Globals"))
		return
	}
	globalsL := apiLowerKeys(globals)

	results := make([]apiSendResultJSON, len(msgs))
	var failed int
	var statuses []int
	for i, raw := range msgs {
		m, errs := a.sendValidate(raw, globalsL)
		if len(errs) > 0 {
			failed++
			results[i] = apiSendResultJSON{Status: "error", Errors: errs}
			for _, e := range errs {
				statuses = append(statuses, e.StatusCode)
			}
			continue
		}
		results[i] = a.sendAccept(st, m, sandbox)
	}
	status := http.StatusOK
	if failed > 0 {
		status = http.StatusBadRequest
		if failed == len(msgs) && apiAllEqual(statuses) {
			status = statuses[0]
		}
	}
	a.writeJSON(w, status, map[string]any{"Messages": results})
}

// sendAccept gives every distinct recipient its ids and records the message.
func (a *API) sendAccept(st *apiSendState, m *APISendMessage, sandbox bool) apiSendResultJSON {
	res := apiSendResultJSON{Status: "success", CustomID: &m.CustomID,
		To: []apiSentJSON{}, Cc: []apiSentJSON{}, Bcc: []apiSentJSON{}}
	rec := APISentMessage{APISendMessage: *m}
	seen := map[string]bool{}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, f := range []struct {
		name string
		l    []APISendAddress
		out  *[]apiSentJSON
	}{{"To", m.To, &res.To}, {"Cc", m.Cc, &res.Cc}, {"Bcc", m.Bcc, &res.Bcc}} {
		for _, r := range f.l {
			k := strings.ToLower(r.Email)
			if seen[k] {
				continue // a recipient listed twice counts once
			}
			seen[k] = true
			s := apiSentJSON{Email: r.Email, MessageHref: a.URL() + "/v3/message/0"}
			if !sandbox {
				st.nextID += 1 + int64(len(st.sent)%7)
				s.MessageID, s.MessageUUID = st.nextID, apiSendUUID()
				s.MessageHref = a.URL() + "/v3/REST/message/" + strconv.FormatInt(s.MessageID, 10)
				rec.Recipients = append(rec.Recipients, APISentRecipient{Email: r.Email, Field: f.name,
					MessageID: s.MessageID, MessageUUID: s.MessageUUID})
			}
			*f.out = append(*f.out, s)
		}
	}
	if !sandbox {
		st.sent = append(st.sent, rec)
	}
	return res
}

// sendValidate applies Globals to one message, decodes and checks it.
func (a *API) sendValidate(raw json.RawMessage, globals map[string]json.RawMessage) (*APISendMessage, []apiSendError) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, []apiSendError{apiSendErr("mj-0004", 400, `Type mismatch. Expected type "Message".`, "Messages")}
	}
	merged := map[string]json.RawMessage{}
	for k, v := range globals {
		merged[k] = v
	}
	for k, v := range apiLowerKeys(obj) {
		if g, ok := merged[k]; ok && (k == "headers" || k == "variables") {
			if mv, ok := apiMergeObjects(g, v); ok {
				v = mv
			}
		}
		merged[k] = v
	}
	buf, _ := json.Marshal(merged)
	var m APISendMessage
	if err := json.Unmarshal(buf, &m); err != nil {
		field := "Messages"
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			field = te.Field
		}
		return nil, []apiSendError{apiSendErr("mj-0004", 400, "Type mismatch. Expected type \""+apiTypeName(te)+"\".", field)}
	}
	errs := apiSendCheck(&m)
	if len(errs) == 0 && m.From != nil && a.sendChecksSenders() && !a.activeSender(m.From.Email) {
		errs = append(errs, apiSendErr("send-0008", 403,
			"\""+m.From.Email+"\" is not an authorized sender email address for your account.", "From"))
	}
	return &m, errs
}

func (a *API) sendChecksSenders() bool {
	st := a.sendState()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.checkSenders
}

// activeSender reports whether an Active sender matches email exactly or as
// *@domain.
func (a *API) activeSender(email string) bool {
	_, domain, _ := strings.Cut(email, "@")
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.senders {
		if s.Status == APIStatusActive && (strings.EqualFold(s.Email, email) || strings.EqualFold(s.Email, "*@"+domain)) {
			return true
		}
	}
	return false
}

// apiSendCheck validates a decoded message; it returns every error found.
func apiSendCheck(m *APISendMessage) []apiSendError {
	var errs []apiSendError
	add := func(code string, status int, msg string, related ...string) {
		errs = append(errs, apiSendErr(code, status, msg, related...))
	}
	email := func(field string, a *APISendAddress) {
		switch {
		case strings.TrimSpace(a.Email) == "":
			add("mj-0012", 400, "Empty string.", field+".Email")
		case !apiValidEmail(a.Email):
			add("mj-0013", 400, "\""+a.Email+"\" is an invalid email address.", field+".Email")
		}
	}
	if m.From == nil {
		add("mj-0003", 400, "Missing mandatory property.", "From")
	} else {
		email("From", m.From)
	}
	switch {
	case m.To == nil:
		add("mj-0003", 400, "Missing mandatory property.", "To")
	case len(m.To) == 0:
		add("mj-0007", 400, "Empty array.", "To")
	}
	for _, f := range []struct {
		name string
		l    []APISendAddress
	}{{"To", m.To}, {"Cc", m.Cc}, {"Bcc", m.Bcc}} {
		distinct := map[string]bool{}
		for i := range f.l {
			email(f.name+"["+strconv.Itoa(i)+"]", &f.l[i])
			distinct[strings.ToLower(f.l[i].Email)] = true
		}
		if len(distinct) > apiSendMaxRcpts {
			add("send-0015", 400, "Too many recipients in "+f.name+" (at most 50).", f.name)
		}
	}
	if m.ReplyTo != nil {
		email("ReplyTo", m.ReplyTo)
	}
	if m.Sender != nil {
		add("send-0006", 403, "The Sender property is not enabled for this account.", "Sender")
	}
	if m.TextPart == "" && m.HTMLPart == "" && m.TemplateID == 0 {
		add("send-0003", 400, "At least \"HTMLPart\", \"TextPart\" or \"TemplateID\" must be provided.", "HTMLPart", "TextPart")
	}
	if len([]rune(m.Subject)) > 255 {
		add("mj-0006", 400, "Too long. Maximum length is 255.", "Subject")
	}
	if len(m.URLTags) > 256 {
		add("mj-0006", 400, "Too long. Maximum length is 256.", "URLTags")
	}
	if m.Priority != nil && (*m.Priority < 0 || *m.Priority > 3) {
		add("mj-0005", 400, "Value not allowed.", "Priority")
	}
	for name, v := range map[string]string{"TrackOpens": m.TrackOpens, "TrackClicks": m.TrackClicks} {
		if v != "" && v != "account_default" && v != "disabled" && v != "enabled" {
			add("mj-0005", 400, "Value not allowed.", name)
		}
	}
	if m.DeduplicateCampaign && m.CustomCampaign == "" {
		add("send-0012", 400, "DeduplicateCampaign requires CustomCampaign.", "DeduplicateCampaign")
	}
	if (m.TemplateErrorReporting != nil || m.TemplateErrorDeliver) && !m.TemplateLanguage {
		add("send-0016", 400, "TemplateErrorReporting and TemplateErrorDeliver require TemplateLanguage.", "TemplateLanguage")
	}
	for name := range m.Headers {
		if apiForbiddenHeaders[strings.ToLower(name)] {
			add("send-0011", 400, "Header \""+name+"\" cannot be set with Headers.", "Headers[\""+name+"\"]")
		}
	}
	var total int
	for _, f := range []struct {
		name string
		l    []APISendAttachment
	}{{"Attachments", m.Attachments}, {"InlinedAttachments", m.InlinedAttachments}} {
		for i, at := range f.l {
			p := f.name + "[" + strconv.Itoa(i) + "]."
			for prop, v := range map[string]string{"Filename": at.Filename, "ContentType": at.ContentType, "Base64Content": at.Base64Content} {
				if strings.TrimSpace(v) == "" {
					add("mj-0012", 400, "Empty string.", p+prop)
				}
			}
			data, err := at.Content()
			if err != nil {
				add("mj-0004", 400, "Type mismatch. Expected type \"base64\".", p+"Base64Content")
			}
			total += len(data)
		}
	}
	if total > apiSendMaxAtt {
		add("mj-0011", 400, "Payload too large: attachments exceed 15 MB.", "Attachments")
	}
	return errs
}

// apiForbiddenHeaders may not be set with Headers (send-0011).
var apiForbiddenHeaders = func() map[string]bool {
	m := map[string]bool{}
	for _, h := range strings.Fields(`From Sender Subject To Cc Bcc Return-Path Delivered-To DKIM-Signature
		DomainKey-Status Received-SPF Authentication-Results Received X-Mailjet-Prio X-Mailjet-Debug
		User-Agent X-Mailer X-MJ-CustomID X-MJ-EventPayload X-MJ-Vars X-MJ-TemplateErrorDeliver
		X-MJ-TemplateErrorReporting X-MJ-TemplateLanguage X-Mailjet-TrackOpen X-Mailjet-TrackClick
		X-MJ-TemplateID X-MJ-WorkflowID X-Feedback-Id X-Mailjet-Segmentation List-Id X-MJ-MID
		X-MJ-ErrorMessage Date X-CSA-Complaints Message-Id X-Mailjet-Campaign X-MJ-StatisticsContactsListID`) {
		m[strings.ToLower(h)] = true
	}
	return m
}()

// apiValidEmail accepts a bare addr-spec with a dotted domain.
func apiValidEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && strings.Contains(strings.Trim(domain, "."), ".")
}

func apiLowerKeys(m map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// apiMergeObjects merges two JSON objects, the second one's keys winning.
func apiMergeObjects(a, b json.RawMessage) (json.RawMessage, bool) {
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil || ma == nil || mb == nil {
		return nil, false
	}
	for k, v := range mb {
		ma[k] = v
	}
	out, err := json.Marshal(ma)
	return out, err == nil
}

func apiTypeName(te *json.UnmarshalTypeError) string {
	if te == nil || te.Type == nil {
		return "unknown"
	}
	return te.Type.String()
}

func apiAllEqual(l []int) bool {
	for _, v := range l {
		if v != l[0] {
			return false
		}
	}
	return len(l) > 0
}

func apiSendUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
