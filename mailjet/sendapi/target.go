// Package sendapi delivers relay messages through Mailjet's Send API v3.1
// (POST {BaseURL}/v3.1/send) instead of its SMTP relay. The raw MIME message
// is converted into the API's JSON form (see [Convert]); a message the API
// cannot carry faithfully (signed or encrypted MIME, over 15 MB of
// attachments, no body part) is reported as Result.Unsupported so that the
// scheduler can hand it to another transport.
//
// The endpoint is called with net/http directly, not with the Mailjet SDK,
// whose SendMailV31 loses the MessageIDs of the messages that were sent when
// another message of the same call failed.
package sendapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
)

// Config describes the Send API endpoint and account.
type Config struct {
	// BaseURL is the API root, e.g. https://api.mailjet.com (or
	// https://api.us.mailjet.com), without /v3 or /v3.1.
	BaseURL string
	// APIKey and SecretKey are the Basic auth credentials.
	APIKey, SecretKey string
	// Timeout bounds each HTTP call (default 60 s).
	Timeout time.Duration
	// SandboxMode asks Mailjet to validate without sending.
	SandboxMode bool
	// HTTPClient replaces the default client (e.g. one trusting a test
	// server). The default client does not follow redirects.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Target is the Send API transport. It is safe for concurrent use.
//
// Each Deliver makes one HTTP call for the relay message (the relay gives
// messages one at a time; batching several relay messages per call is not
// done). That call may hold several API messages: when the message has only
// blind recipients, each gets its own copy. Calls carry at most 50 messages
// and at most 15 MB of attachments; more copies go in further calls.
type Target struct {
	cfg      Config
	endpoint string
	client   *http.Client
	owned    bool // client created here: Close releases its connections
	log      *slog.Logger
	closed   atomic.Bool
}

// New checks cfg and prepares the transport; it connects lazily.
func New(cfg Config) (*Target, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.BaseURL))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("sendapi: base URL %q: want http(s)://host[:port]", cfg.BaseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("sendapi: the base URL must not carry credentials, a query or a fragment")
	}
	if cfg.APIKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("sendapi: the API key and the secret key are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	t := &Target{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger,
		endpoint: strings.TrimRight(u.String(), "/") + "/v3.1/send"}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.client == nil {
		t.client = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirected POST would lose its body or its method; report it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		t.owned = true
	}
	return t, nil
}

// Name is the transport's name in routes and logs.
func (t *Target) Name() string { return "api" }

// Endpoint is the URL messages are posted to.
func (t *Target) Endpoint() string { return t.endpoint }

// Close releases idle connections; later deliveries fail temporarily.
func (t *Target) Close() error {
	t.closed.Store(true)
	if t.owned {
		t.client.CloseIdleConnections()
	}
	return nil
}

// Deliver converts m and posts it. Every recipient gets an outcome: with
// Mailjet's MessageID and MessageUUID when sent, TempFail for rate limits,
// server and network errors and account (401/403) errors, PermFail with
// Mailjet's error code and message when Mailjet refused the message itself.
func (t *Target) Deliver(ctx context.Context, m *mailjet.Message) mailjet.Result {
	start := time.Now()
	res := mailjet.Result{Upstream: t.endpoint}
	if t.closed.Load() {
		res.Reply = mailjet.Reply{Text: "Send API transport closed"}
		res.Rcpts = mailjet.AllRcpts(m, mailjet.TempFail, res.Reply)
		return res
	}
	conv, err := Convert(m)
	if err != nil {
		var ue *UnsupportedError
		reason := err.Error()
		if errors.As(err, &ue) {
			reason = ue.Reason
		}
		res.Unsupported, res.Reply = true, mailjet.Reply{Text: reason}
		res.Rcpts = mailjet.AllRcpts(m, mailjet.PermFail, res.Reply)
		t.log.Info("send api: message not expressible", "id", m.ID, "reason", reason)
		return res
	}
	res.Rcpts = mailjet.AllRcpts(m, mailjet.TempFail, mailjet.Reply{Text: "not attempted"})
	var replies []string
	for _, b := range batches(conv) {
		out := t.post(ctx, conv.Messages[b.from:b.to])
		for k, o := range out.msgs {
			applyOutcome(&res, m, conv.Rcpts[b.from+k], o)
		}
		replies = append(replies, out.reply)
	}
	res.Reply = mailjet.Reply{Text: summary(replies)}
	for _, r := range res.Rcpts {
		if r.MessageUUID != "" {
			res.UpstreamID = r.MessageUUID
			break
		}
	}
	t.logResult(m, &res, time.Since(start))
	return res
}

type batch struct{ from, to int }

// batches cuts the converted messages into calls of at most 50 messages and
// MaxAttachmentBytes of (base64) attachment data; a single message always
// forms a call of its own.
func batches(c *Converted) []batch {
	var out []batch
	from, size := 0, 0
	for i, msg := range c.Messages {
		n := attachmentSize(&msg)
		if i > from && (i-from >= MaxMessagesPerCall || size+n > MaxAttachmentBytes*4/3) {
			out = append(out, batch{from, i})
			from, size = i, 0
		}
		size += n
	}
	return append(out, batch{from, len(c.Messages)})
}

func attachmentSize(m *Message) int {
	n := 0
	for _, a := range m.Attachments {
		n += len(a.Base64Content)
	}
	for _, a := range m.InlinedAttachments {
		n += len(a.Base64Content)
	}
	return n
}

// post makes one call and interprets the answer.
func (t *Target) post(ctx context.Context, msgs []Message) callOutcome {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(sendRequest{Messages: msgs, SandboxMode: t.cfg.SandboxMode}); err != nil {
		return uniform(len(msgs), mailjet.PermFail, "cannot encode the Send API request: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, &buf)
	if err != nil {
		return uniform(len(msgs), mailjet.TempFail, "cannot build the Send API request: "+err.Error())
	}
	req.SetBasicAuth(t.cfg.APIKey, t.cfg.SecretKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mjrelay")
	resp, err := t.client.Do(req)
	if err != nil {
		return uniform(len(msgs), mailjet.TempFail, "Send API unreachable: "+oneLine(err.Error(), 300))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil && resp.StatusCode/100 != 2 {
		return uniform(len(msgs), mailjet.TempFail, fmt.Sprintf("HTTP %d, reading the answer failed: %v", resp.StatusCode, err))
	}
	return t.interpret(resp.StatusCode, body, len(msgs))
}

func (t *Target) logResult(m *mailjet.Message, res *mailjet.Result, d time.Duration) {
	var ok, temp, perm int
	for _, r := range res.Rcpts {
		switch r.Status {
		case mailjet.Delivered:
			ok++
		case mailjet.TempFail:
			temp++
		default:
			perm++
		}
	}
	attrs := []any{"id", m.ID, "delivered", ok, "tempfail", temp, "permfail", perm,
		"upstream_id", res.UpstreamID, "reply", res.Reply, "ms", d.Milliseconds()}
	if temp+perm > 0 {
		t.log.Warn("send api delivery", attrs...)
		return
	}
	t.log.Info("send api delivery", attrs...)
}
