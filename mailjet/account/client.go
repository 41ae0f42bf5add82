package account

import (
	"context"
	"errors"
	"fmt"
	mj "github.com/mjrelay/mjrelay/mailjet"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailjet/mailjet-apiv3-go/v4"
	"github.com/mailjet/mailjet-apiv3-go/v4/resources"
)

// SDK is the part of the Mailjet SDK the client uses; *mailjet.Client
// implements it. Tests may swap it.
type SDK interface {
	List(resource string, resp any, options ...mailjet.RequestOptions) (count, total int, err error)
	Get(mr *mailjet.Request, resp any, options ...mailjet.RequestOptions) error
	Post(fmr *mailjet.FullRequest, resp any, options ...mailjet.RequestOptions) error
}

// pageSize is the largest Limit the REST API accepts.
const pageSize = 1000

// maxPages bounds pagination (a million objects) against a server that never
// reaches Total.
const maxPages = 1000

// DefaultTimeout bounds each REST request.
const DefaultTimeout = 30 * time.Second

// Client reads the account state from the Mailjet REST API.
type Client struct {
	sdk     SDK
	apiKey  string
	baseURL string
}

// NewClient returns a client for the API at apiURL (the mailjet.api_url
// setting, e.g. "https://api.mailjet.com"; "/v3" is appended). secret is
// only ever sent to the API, never logged nor part of an error. transport
// may be nil for http.DefaultTransport; timeout <= 0 means [DefaultTimeout].
func NewClient(apiURL, apiKey, secret string, transport http.RoundTripper, timeout time.Duration) (*Client, error) {
	if apiKey == "" || secret == "" {
		return nil, errors.New("mailjet: api_key and secret_key are required")
	}
	u, err := url.Parse(strings.TrimRight(apiURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("mailjet: api_url %q is not an http(s) URL", apiURL)
	}
	if u.User != nil {
		return nil, errors.New("mailjet: api_url must not contain credentials")
	}
	base := u.String()
	if !strings.HasSuffix(base, "/v3") {
		base += "/v3"
	}
	if transport == nil {
		transport = http.DefaultTransport
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	mj := mailjet.NewMailjetClient(apiKey, secret, base)
	mj.SetClient(&http.Client{Timeout: timeout, Transport: observingTransport{transport}})
	return &Client{sdk: mj, apiKey: apiKey, baseURL: base}, nil
}

// NewClientWithSDK wraps an SDK implementation (tests).
func NewClientWithSDK(sdk SDK, apiKey string) *Client { return &Client{sdk: sdk, apiKey: apiKey} }

// APIKey returns the public API key.
func (c *Client) APIKey() string { return c.apiKey }

// Validate checks the keys with the cheapest call (GET /sender?Limit=1).
func (c *Client) Validate(ctx context.Context) error {
	_, _, err := listPage[resources.Sender](ctx, c, "sender", 1, 0)
	return err
}

// Fetch reads every sender and domain; the result is a complete snapshot or
// an error.
func (c *Client) Fetch(ctx context.Context) (*Snapshot, error) {
	senders, err := c.Senders(ctx)
	if err != nil {
		return nil, err
	}
	domains, err := c.Domains(ctx)
	if err != nil {
		return nil, err
	}
	return NewSnapshot(time.Now().UTC(), c.apiKey, senders, domains), nil
}

// Senders lists all non-deleted senders.
func (c *Client) Senders(ctx context.Context) ([]Sender, error) {
	raw, err := paginate(ctx, c, "sender", func(s resources.Sender) int64 { return s.ID })
	if err != nil {
		return nil, err
	}
	out := make([]Sender, len(raw))
	for i, s := range raw {
		out[i] = Sender{ID: s.ID, Email: s.Email, Name: s.Name, Status: s.Status, EmailType: s.EmailType, DNSID: s.DNSID}
		if s.CreatedAt != nil {
			out[i].CreatedAt = s.CreatedAt.Time
		}
	}
	return out, nil
}

// Domains lists all sending domains.
func (c *Client) Domains(ctx context.Context) ([]Domain, error) {
	raw, err := paginate(ctx, c, "dns", func(d resources.Dns) int64 { return d.ID })
	if err != nil {
		return nil, err
	}
	out := make([]Domain, len(raw))
	for i, d := range raw {
		out[i] = Domain{ID: d.ID, Domain: d.Domain, DKIMStatus: d.DKIMStatus, SPFStatus: d.SPFStatus,
			DKIMRecordName: d.DKIMRecordName, DKIMRecordValue: d.DKIMRecordValue, SPFRecordValue: d.SPFRecordValue,
			OwnerShipToken: d.OwnerShipToken, OwnerShipTokenRecordName: d.OwnerShipTokenRecordName,
			IsCheckInProgress: d.IsCheckInProgress}
		if d.LastCheckAt != nil {
			out[i].LastCheckAt = d.LastCheckAt.Time
		}
	}
	return out, nil
}

// DomainCheck is the answer of POST /dns/{domain}/check.
type DomainCheck struct {
	DKIMStatus              string
	DKIMErrors              []string
	DKIMRecordCurrentValue  string
	SPFStatus               string
	SPFErrors               []string
	SPFRecordsCurrentValues []string
}

// CheckDomain asks Mailjet to re-check the DNS of domain now and returns the
// outcome (it also updates the statuses Mailjet stores).
func (c *Client) CheckDomain(ctx context.Context, domain string) (DomainCheck, error) {
	obs := &observation{}
	var out []DomainCheck // the SDK's DnsCheck lacks SPFRecordsCurrentValues
	err := c.sdk.Post(&mailjet.FullRequest{
		Info:    &mailjet.Request{Resource: "dns", AltID: url.PathEscape(domain), Action: "check"},
		Payload: map[string]any{},
	}, &out, mailjet.WithContext(withObservation(ctx, obs)))
	if err = c.classify(ctx, err, obs, "dns/"+domain+"/check"); err != nil {
		return DomainCheck{}, err
	}
	if len(out) != 1 {
		return DomainCheck{}, fmt.Errorf("mailjet dns/%s/check: %d results, want 1", domain, len(out))
	}
	return out[0], nil
}

// paginate lists every object of resource, Limit=1000 per page, following
// Offset until Total. Objects seen twice (the list moved between pages) are
// kept once.
func paginate[T any](ctx context.Context, c *Client, resource string, id func(T) int64) ([]T, error) {
	var all []T
	seen := map[int64]bool{}
	offset := 0
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("mailjet %s: more than %d pages", resource, maxPages)
		}
		items, total, err := listPage[T](ctx, c, resource, pageSize, offset)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if k := id(it); !seen[k] {
				seen[k] = true
				all = append(all, it)
			}
		}
		offset += len(items)
		if offset >= total {
			return all, nil
		}
		if len(items) == 0 {
			return nil, fmt.Errorf("mailjet %s: empty page at offset %d of %d", resource, offset, total)
		}
	}
}

// listPage fetches one page and returns its objects and Total.
func listPage[T any](ctx context.Context, c *Client, resource string, limit, offset int) ([]T, int, error) {
	obs := &observation{}
	var items []T
	count, total, err := c.sdk.List(resource, &items,
		mailjet.Filter("Limit", strconv.Itoa(limit)), mailjet.Filter("Offset", strconv.Itoa(offset)),
		mailjet.WithContext(withObservation(ctx, obs)))
	if err := c.classify(ctx, err, obs, resource); err != nil {
		return nil, 0, err
	}
	if count != len(items) || count > limit || total < 0 {
		return nil, 0, fmt.Errorf("mailjet %s: inconsistent answer: Count %d with %d objects, Total %d (Limit %d)",
			resource, count, len(items), total, limit)
	}
	return items, total, nil
}

// classify turns an SDK error, or a success the SDK could not read, into one
// of this package's errors.
func (c *Client) classify(ctx context.Context, err error, obs *observation, what string) error {
	if err == nil {
		if obs.seen && !isJSON(obs.contentType) {
			return &FormatError{Resource: what, StatusCode: obs.status, ContentType: obs.contentType}
		}
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("mailjet %s: %w", what, ctxErr)
	}
	var re mailjet.RequestError
	if !errors.As(err, &re) {
		var pre *mailjet.RequestError
		if !errors.As(err, &pre) {
			return &UnreachableError{Resource: what, Err: err}
		}
		re = *pre
	}
	msg := cleanMessage(re.ErrorMessage)
	switch re.StatusCode {
	case http.StatusUnauthorized:
		return &AuthError{APIKey: c.apiKey, Message: msg}
	case http.StatusTooManyRequests:
		return &StatusError{Resource: what, StatusCode: re.StatusCode, Message: "rate limited by Mailjet"}
	}
	return &StatusError{Resource: what, StatusCode: re.StatusCode, Message: msg}
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// cleanMessage undoes the SDK's "unexpected server response: %s<body>"
// formatting and keeps the text short and on one line.
func cleanMessage(m string) string {
	m = strings.TrimPrefix(m, "unexpected server response: %s")
	m = strings.Join(strings.Fields(m), " ")
	if strings.HasPrefix(m, "<") { // an HTML error page says nothing the status does not
		return ""
	}
	if len(m) > 200 {
		m = m[:200] + "..."
	}
	return m
}

// AuthError means Mailjet refused the key pair (HTTP 401).
type AuthError struct {
	APIKey  string
	Message string
}

func (e *AuthError) Error() string {
	s := fmt.Sprintf("mailjet: API key %q was rejected (401 Unauthorized): check mailjet.api_key and mailjet.secret_key (Mailjet > Account settings > API keys)", mj.MaskKey(e.APIKey))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// StatusError is any other HTTP error answer (429, 5xx, 4xx).
type StatusError struct {
	Resource   string
	StatusCode int
	Message    string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("mailjet %s: HTTP %d %s", e.Resource, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether retrying later may help (429 and 5xx).
func (e *StatusError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// FormatError is a successful HTTP answer that is not JSON. The SDK reads
// such answers as "no objects, no error", which must not be mistaken for an
// empty account.
type FormatError struct {
	Resource    string
	StatusCode  int
	ContentType string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("mailjet %s: HTTP %d answer with Content-Type %q instead of application/json (proxy or wrong api_url?)",
		e.Resource, e.StatusCode, e.ContentType)
}

// UnreachableError is a network-level failure (connection refused, timeout,
// connection closed).
type UnreachableError struct {
	Resource string
	Err      error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("mailjet %s: API unreachable: %v", e.Resource, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// observation records what the transport saw for one SDK call; the SDK hides
// the status and content type of successful answers.
type observation struct {
	seen        bool
	status      int
	contentType string
}

type observationKey struct{}

func withObservation(ctx context.Context, o *observation) context.Context {
	return context.WithValue(ctx, observationKey{}, o)
}

// observingTransport fills the request's observation (if any).
type observingTransport struct{ base http.RoundTripper }

func (t observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if o, ok := req.Context().Value(observationKey{}).(*observation); ok && resp != nil {
		o.seen, o.status, o.contentType = true, resp.StatusCode, resp.Header.Get("Content-Type")
	}
	return resp, err
}
