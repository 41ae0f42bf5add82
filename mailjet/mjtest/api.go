package mjtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Sender statuses, EmailType values and DNS check statuses used by the
// Mailjet REST API.
const (
	APIStatusActive   = "Active"
	APIStatusInactive = "Inactive"
	APIStatusDeleted  = "Deleted"

	APIEmailTransactional = "transactional"
	APIEmailBulk          = "bulk"
	APIEmailUnknown       = "unknown"

	APICheckOK         = "OK"
	APICheckError      = "Error"
	APICheckNotChecked = "Not checked"
	APICheckNotFound   = "Not found"
)

// APISender is one sender of the emulated account (/v3/REST/sender).
type APISender struct {
	ID              int64
	Email           string
	Name            string
	Status          string
	EmailType       string
	IsDefaultSender bool
	CreatedAt       time.Time
}

// APIDomain is one sending domain of the emulated account (/v3/REST/dns).
// Empty fields get Mailjet-like defaults in [API.AddDomain]: DKIM record
// name mailjet._domainkey.<domain>, a random DKIM key and ownership token,
// SPF value "v=spf1 include:spf.mailjet.com ?all", statuses "Not checked".
type APIDomain struct {
	ID                       int64
	Domain                   string
	DKIMRecordName           string
	DKIMRecordValue          string
	DKIMStatus               string
	SPFRecordValue           string
	SPFStatus                string
	OwnerShipToken           string
	OwnerShipTokenRecordName string
	IsCheckInProgress        bool
	LastCheckAt              time.Time
}

// APILookupTXT resolves TXT records for the emulated POST /dns/{id}/check
// and POST /sender/{id}/validate; see [API.SetLookupTXT].
type APILookupTXT func(name string) ([]string, error)

// API emulates the Mailjet REST API (/v3/REST) over HTTP for tests. It checks
// Basic auth on every request, answers in the {Count, Data, Total} envelope
// with Content-Type application/json, honours Limit/Offset and the documented
// filters, and can be made to fail the way the real service does (401 with an
// empty body, 429 as text/html, 503, dropped connections, a missing content
// type). Senders and domains can be changed while clients are running.
type API struct {
	srv       *httptest.Server
	apiKey    string
	secretKey string

	mu                sync.Mutex
	senders           []*APISender
	domains           []*APIDomain
	nextID            int64
	down              bool
	dropConns         bool
	emptyUnauthorized bool
	omitContentType   bool
	rateLimited       int
	lookupTXT         APILookupTXT
	requests          int
	byPath            map[string]int
	now               func() time.Time
	send              *apiSendState // /v3.1/send (api_send.go)
}

// NewAPI starts an emulated Mailjet REST API that accepts the given key pair.
// Close it when done.
func NewAPI(apiKey, secretKey string) *API {
	a := &API{
		apiKey:    apiKey,
		secretKey: secretKey,
		nextID:    1000,
		byPath:    map[string]int{},
		now:       func() time.Time { return time.Now().UTC().Truncate(time.Second) },
		send:      newAPISendState(),
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serveHTTP))
	return a
}

// URL is the base URL in the form of the mailjet.api_url setting
// ("http://127.0.0.1:port", without "/v3").
func (a *API) URL() string { return a.srv.URL }

// Close shuts the server down.
func (a *API) Close() { a.srv.Close() }

// Requests returns how many HTTP requests the server has received, refused
// ones included.
func (a *API) Requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests
}

// RequestsTo returns how many requests were made to path (e.g. "/v3/REST/sender").
func (a *API) RequestsTo(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byPath[path]
}

// AddSender adds a sender and returns its ID. email may be "*@domain" for a
// domain sender. status is Active, Inactive or Deleted; emailType is
// transactional, bulk or unknown ("" means unknown).
func (a *API) AddSender(email, status, emailType string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if emailType == "" {
		emailType = APIEmailUnknown
	}
	a.nextID++
	s := &APISender{ID: a.nextID, Email: email, Status: status, EmailType: emailType, CreatedAt: a.now()}
	a.senders = append(a.senders, s)
	return s.ID
}

// SetSenderStatus changes the status of every sender whose Email is email
// (case-insensitive).
func (a *API) SetSenderStatus(email, status string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	found := false
	for _, s := range a.senders {
		if strings.EqualFold(s.Email, email) {
			s.Status = status
			found = true
		}
	}
	if !found {
		return fmt.Errorf("mjtest: no sender %q", email)
	}
	return nil
}

// Senders returns a copy of all senders, deleted ones included.
func (a *API) Senders() []APISender {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]APISender, len(a.senders))
	for i, s := range a.senders {
		out[i] = *s
	}
	return out
}

// AddDomain adds a sending domain (filling defaults, see [APIDomain]) and
// returns its ID.
func (a *API) AddDomain(d APIDomain) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	d.Domain = strings.ToLower(strings.TrimSuffix(d.Domain, "."))
	if d.DKIMRecordName == "" {
		d.DKIMRecordName = "mailjet._domainkey." + d.Domain
	}
	if d.DKIMRecordValue == "" {
		d.DKIMRecordValue = "k=rsa; p=" + apiRandomKey()
	}
	if d.SPFRecordValue == "" {
		d.SPFRecordValue = "v=spf1 include:spf.mailjet.com ?all"
	}
	if d.OwnerShipToken == "" {
		d.OwnerShipToken = apiRandomHex(16)
	}
	if d.OwnerShipTokenRecordName == "" {
		d.OwnerShipTokenRecordName = "mailjet._" + d.OwnerShipToken[:8]
	}
	if d.DKIMStatus == "" {
		d.DKIMStatus = APICheckNotChecked
	}
	if d.SPFStatus == "" {
		d.SPFStatus = APICheckNotChecked
	}
	a.nextID++
	d.ID = a.nextID
	a.domains = append(a.domains, &d)
	return d.ID
}

// Domain returns a copy of the domain entry for name.
func (a *API) Domain(name string) (APIDomain, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d := a.domainLocked(name); d != nil {
		return *d, true
	}
	return APIDomain{}, false
}

// SetDomainStatus sets the DKIMStatus and SPFStatus of a domain.
func (a *API) SetDomainStatus(domain, dkimStatus, spfStatus string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.domainLocked(domain)
	if d == nil {
		return fmt.Errorf("mjtest: no domain %q", domain)
	}
	d.DKIMStatus, d.SPFStatus = dkimStatus, spfStatus
	return nil
}

// SetDown makes every request fail with 503 Service Unavailable (text/html,
// as a load balancer would answer).
func (a *API) SetDown(down bool) { a.set(func() { a.down = down }) }

// SetDropConnections makes the server close every connection without
// answering, as an unreachable API would look to the client.
func (a *API) SetDropConnections(drop bool) { a.set(func() { a.dropConns = drop }) }

// SetRateLimited makes the next n requests fail with 429 and the text/html
// body "Rate limit exceeded".
func (a *API) SetRateLimited(n int) { a.set(func() { a.rateLimited = n }) }

// SetEmptyUnauthorized makes authentication failures answer 401 with an
// empty body instead of the JSON error document.
func (a *API) SetEmptyUnauthorized(empty bool) { a.set(func() { a.emptyUnauthorized = empty }) }

// SetOmitContentType makes successful answers leave out the Content-Type
// header (the SDK then silently returns no data).
func (a *API) SetOmitContentType(omit bool) { a.set(func() { a.omitContentType = omit }) }

// SetLookupTXT lets POST /dns/{id}/check and POST /sender/{id}/validate read
// real (test) DNS: the check then sets DKIMStatus/SPFStatus from the
// published records, and validate activates a sender whose domain publishes
// the ownership TXT record. Without it, check reports the stored statuses and
// validate never succeeds.
func (a *API) SetLookupTXT(fn APILookupTXT) { a.set(func() { a.lookupTXT = fn }) }

// SetClock replaces the clock used for CreatedAt and LastCheckAt.
func (a *API) SetClock(now func() time.Time) { a.set(func() { a.now = now }) }

func (a *API) set(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f()
}

func (a *API) domainLocked(idOrName string) *APIDomain {
	for _, d := range a.domains {
		if strings.EqualFold(d.Domain, strings.TrimSuffix(idOrName, ".")) || fmt.Sprint(d.ID) == idOrName {
			return d
		}
	}
	return nil
}

func apiRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// apiRandomKey returns a base64-looking public key of realistic length
// (longer than one 255-byte TXT string).
func apiRandomKey() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, 392)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + string(b) + "IDAQAB"
}
