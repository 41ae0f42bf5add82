package mjtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mailjet/mailjet-apiv3-go/v4"
	"github.com/mailjet/mailjet-apiv3-go/v4/resources"
)

const (
	apiTestKey    = "0123456789abcdef0123456789abcdef"
	apiTestSecret = "fedcba9876543210fedcba9876543210"
)

func apiTestServer(t *testing.T) *API {
	t.Helper()
	a := NewAPI(apiTestKey, apiTestSecret)
	t.Cleanup(a.Close)
	return a
}

// apiGet does a raw GET and returns status, content type and body.
func apiGet(t *testing.T, a *API, path, user, pass string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func TestAPIAuth(t *testing.T) {
	a := apiTestServer(t)
	tests := []struct {
		name, user, pass string
		empty            bool
		wantStatus       int
		wantBody         string
	}{
		{"good keys", apiTestKey, apiTestSecret, false, 200, `"Total":0`},
		{"no auth", "", "", false, 401, `"ErrorMessage":"API key authentication/authorization failure.`},
		{"wrong secret", apiTestKey, "nope", false, 401, `"StatusCode":401`},
		{"wrong key", "nope", apiTestSecret, false, 401, `"StatusCode":401`},
		{"wrong secret, empty-body mode", apiTestKey, "nope", true, 401, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.SetEmptyUnauthorized(tt.empty)
			status, ct, body := apiGet(t, a, "/v3/REST/sender", tt.user, tt.pass)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", status, tt.wantStatus, body)
			}
			if tt.wantBody == "" && len(body) != 0 {
				t.Fatalf("body %q, want empty", body)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("body %s, want it to contain %s", body, tt.wantBody)
			}
			if len(body) > 0 && ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
}

func TestAPIEnvelopeAndNumbers(t *testing.T) {
	a := apiTestServer(t)
	id := a.AddSender("Notifications@Example.com", APIStatusActive, APIEmailTransactional)
	a.AddDomain(APIDomain{Domain: "example.com"})
	status, ct, body := apiGet(t, a, "/v3/REST/sender", apiTestKey, apiTestSecret)
	if status != 200 || ct != "application/json" {
		t.Fatalf("status %d, content type %q", status, ct)
	}
	var env struct {
		Count, Total int
		Data         []map[string]any
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	if env.Count != 1 || env.Total != 1 || len(env.Data) != 1 {
		t.Fatalf("envelope %s", body)
	}
	got := env.Data[0]
	if got["ID"] != float64(id) || got["IsDefaultSender"] != false || got["Status"] != "Active" {
		t.Fatalf("sender %v: ID, IsDefaultSender and Status must be a number, a bool and the status", got)
	}
	if got["DNSID"] == float64(-1) {
		t.Fatalf("DNSID %v: the sender's domain has a dns entry", got["DNSID"])
	}
	for _, k := range []string{"CreatedAt", "DNSID", "Email", "EmailType", "Filename", "ID", "IsDefaultSender", "Name", "Status"} {
		if _, ok := got[k]; !ok {
			t.Errorf("sender lacks %s", k)
		}
	}
}

func TestAPIPaginationAndFilters(t *testing.T) {
	a := apiTestServer(t)
	for i := range 25 {
		a.AddSender(fmt.Sprintf("user%02d@a.example", i), APIStatusActive, "")
	}
	a.AddSender("*@b.example", APIStatusInactive, "")
	a.AddSender("old@b.example", APIStatusDeleted, "")
	tests := []struct {
		query            string
		wantCount, total int
		wantFirst        string
	}{
		{"", 10, 26, "user00@a.example"}, // default Limit 10, Deleted hidden
		{"?Limit=1000", 26, 26, "user00@a.example"},
		{"?Limit=10&Offset=20", 6, 26, "user20@a.example"},
		{"?Offset=30", 0, 26, ""},
		{"?ShowDeleted=true&Limit=100", 27, 27, "user00@a.example"},
		{"?Status=Deleted", 0, 0, ""},
		{"?Status=Deleted&ShowDeleted=1", 1, 1, "old@b.example"},
		{"?Email=USER03%40a.example", 1, 1, "user03@a.example"},
		{"?Email=%2A%40b.example", 1, 1, "*@b.example"},
		{"?Domain=b.example", 1, 1, "*@b.example"},
		{"?Status=Inactive", 1, 1, "*@b.example"},
		{"?IsDomainSender=true", 1, 1, "*@b.example"},
		{"?Sort=ID+DESC&Limit=1", 1, 26, "*@b.example"},
		{"?countOnly=1", 0, 26, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, _, body := apiGet(t, a, "/v3/REST/sender"+tt.query, apiTestKey, apiTestSecret)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var env struct {
				Count, Total int
				Data         []apiSenderJSON
			}
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatal(err)
			}
			if env.Count != tt.wantCount || len(env.Data) != tt.wantCount || env.Total != tt.total {
				t.Fatalf("Count %d (%d items), Total %d; want %d, %d", env.Count, len(env.Data), env.Total, tt.wantCount, tt.total)
			}
			if tt.wantFirst != "" && env.Data[0].Email != tt.wantFirst {
				t.Fatalf("first %s, want %s", env.Data[0].Email, tt.wantFirst)
			}
		})
	}
}

func TestAPILimitIsCappedAt1000(t *testing.T) {
	a := apiTestServer(t)
	for i := range 1200 {
		a.AddSender(fmt.Sprintf("u%d@example.com", i), APIStatusActive, "")
	}
	for _, q := range []string{"?Limit=5000", "?Limit=1000"} {
		_, _, body := apiGet(t, a, "/v3/REST/sender"+q, apiTestKey, apiTestSecret)
		var env apiEnvelope
		if err := json.Unmarshal(body, &env); err != nil || env.Count != 1000 || env.Total != 1200 {
			t.Fatalf("%s: Count %d Total %d (%v)", q, env.Count, env.Total, err)
		}
	}
}

func TestAPIErrors(t *testing.T) {
	a := apiTestServer(t)
	a.AddDomain(APIDomain{Domain: "example.com"})
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/v3/REST/sender/424242", 404, `{"ErrorInfo":"","ErrorMessage":"Object not found","StatusCode":404}`},
		{"/v3/REST/dns/nowhere.example", 404, `{"ErrorInfo":"","ErrorMessage":"Object not found","StatusCode":404}`},
		{"/v3/REST/nosuchresource", 404, `{"ErrorInfo":"","ErrorMessage":"Object not found","StatusCode":404}`},
		{"/v3/REST/sender?Bogus=1", 400, `"StatusCode":400`},
		{"/v3/REST/sender?Limit=-1", 400, `"StatusCode":400`},
		{"/v3/REST/dns/example.com/check", 405, `"StatusCode":405`}, // GET on a POST action
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, ct, body := apiGet(t, a, tt.path, apiTestKey, apiTestSecret)
			if status != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) || ct != "application/json" {
				t.Fatalf("%d %q %s; want %d %s", status, ct, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestAPIFailureModes(t *testing.T) {
	a := apiTestServer(t)
	a.AddSender("a@example.com", APIStatusActive, "")

	a.SetRateLimited(1)
	status, ct, body := apiGet(t, a, "/v3/REST/sender", apiTestKey, apiTestSecret)
	if status != 429 || ct != "text/html" || string(body) != "Rate limit exceeded" {
		t.Fatalf("rate limited: %d %q %q", status, ct, body)
	}
	if status, _, _ := apiGet(t, a, "/v3/REST/sender", apiTestKey, apiTestSecret); status != 200 {
		t.Fatalf("after the limited request: %d", status)
	}

	a.SetDown(true)
	if status, _, _ := apiGet(t, a, "/v3/REST/sender", apiTestKey, apiTestSecret); status != 503 {
		t.Fatalf("down: %d", status)
	}
	a.SetDown(false)
	if got := a.Requests(); got != 3 {
		t.Fatalf("Requests() = %d, want 3", got)
	}
	if got := a.RequestsTo("/v3/REST/sender"); got != 3 {
		t.Fatalf("RequestsTo = %d, want 3", got)
	}

	a.SetDropConnections(true)
	if _, err := http.Get(a.URL() + "/v3/REST/sender"); err == nil {
		t.Fatal("dropped connection: no error")
	}
	a.SetDropConnections(false)

	a.SetOmitContentType(true)
	status, ct, _ = apiGet(t, a, "/v3/REST/sender", apiTestKey, apiTestSecret)
	if status != 200 || ct != "" {
		t.Fatalf("omit content type: %d %q", status, ct)
	}
}

// The official SDK is the client the emulator must satisfy.
func TestAPIWithSDK(t *testing.T) {
	a := apiTestServer(t)
	id := a.AddSender("notifications@example.com", APIStatusActive, APIEmailTransactional)
	a.AddSender("bounce@example.com", APIStatusInactive, "")
	a.AddDomain(APIDomain{Domain: "example.com", DKIMStatus: APICheckOK, SPFStatus: APICheckError})
	mj := mailjet.NewMailjetClient(apiTestKey, apiTestSecret, a.URL()+"/v3")

	var senders []resources.Sender
	count, total, err := mj.List("sender", &senders, mailjet.Filter("Limit", "1000"), mailjet.Filter("Email", "notifications@example.com"))
	if err != nil || count != 1 || total != 1 || senders[0].ID != id || senders[0].CreatedAt == nil {
		t.Fatalf("List sender: %d %d %v %+v", count, total, err, senders)
	}

	var one []resources.Sender
	if err := mj.Get(&mailjet.Request{Resource: "sender", ID: id}, &one); err != nil || len(one) != 1 || one[0].Email != "notifications@example.com" {
		t.Fatalf("Get sender: %v %+v", err, one)
	}

	var dns []resources.Dns
	if err := mj.Get(&mailjet.Request{Resource: "dns", AltID: "example.com"}, &dns); err != nil || len(dns) != 1 ||
		dns[0].DKIMStatus != "OK" || dns[0].SPFStatus != "Error" || dns[0].OwnerShipToken == "" {
		t.Fatalf("Get dns: %v %+v", err, dns)
	}

	var none []resources.Dns
	err = mj.Get(&mailjet.Request{Resource: "dns", AltID: "nowhere.example"}, &none)
	var re mailjet.RequestError
	if !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorMessage != "Object not found" {
		t.Fatalf("Get missing dns: %#v", err)
	}

	bad := mailjet.NewMailjetClient(apiTestKey, "wrong", a.URL()+"/v3")
	_, _, err = bad.List("sender", &senders)
	if !errors.As(err, &re) || re.StatusCode != 401 {
		t.Fatalf("bad keys: %#v", err)
	}
}

func TestAPIDomainCheckAndValidate(t *testing.T) {
	a := apiTestServer(t)
	a.AddDomain(APIDomain{Domain: "example.com", OwnerShipToken: "tok123", OwnerShipTokenRecordName: "mailjet._tok123"})
	d, _ := a.Domain("example.com")
	zone := map[string][]string{}
	a.SetLookupTXT(func(name string) ([]string, error) { return zone[name], nil })
	senderID := a.AddSender("*@example.com", APIStatusInactive, "")
	mj := mailjet.NewMailjetClient(apiTestKey, apiTestSecret, a.URL()+"/v3")

	type checkOut struct {
		DKIMStatus, SPFStatus   string
		DKIMErrors, SPFErrors   []string
		SPFRecordsCurrentValues []string
	}
	check := func() checkOut {
		t.Helper()
		var out []checkOut
		err := mj.Post(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "dns", AltID: "example.com", Action: "check"},
			Payload: map[string]any{}}, &out)
		if err != nil || len(out) != 1 {
			t.Fatalf("check: %v %+v", err, out)
		}
		return out[0]
	}
	if got := check(); got.DKIMStatus != "Error" || got.SPFStatus != "Not found" || len(got.DKIMErrors) == 0 {
		t.Fatalf("empty DNS: %+v", got)
	}
	zone["example.com"] = []string{"v=spf1 include:_spf.example.net ~all"}
	zone["_spf.example.net"] = []string{"v=spf1 include:spf.mailjet.com -all"}
	zone[d.DKIMRecordName] = []string{d.DKIMRecordValue}
	if got := check(); got.DKIMStatus != "OK" || got.SPFStatus != "OK" || len(got.SPFRecordsCurrentValues) != 1 {
		t.Fatalf("good DNS: %+v", got)
	}
	if d, _ := a.Domain("example.com"); d.DKIMStatus != "OK" || d.LastCheckAt.IsZero() {
		t.Fatalf("check did not store the status: %+v", d)
	}

	validate := func() (int, error) {
		var out []map[string]any
		err := mj.Post(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "sender", ID: senderID, Action: "validate"},
			Payload: map[string]any{}}, &out)
		var re mailjet.RequestError
		if errors.As(err, &re) {
			return re.StatusCode, nil
		}
		return 200, err
	}
	if _, err := validate(); err != nil || a.Senders()[0].Status != APIStatusInactive {
		t.Fatalf("validate without the ownership record: %v %+v", err, a.Senders())
	}
	zone["mailjet._tok123.example.com"] = []string{"tok123"}
	if _, err := validate(); err != nil || a.Senders()[0].Status != APIStatusActive {
		t.Fatalf("validate with the ownership record: %v %+v", err, a.Senders())
	}
	if code, _ := validate(); code != 400 {
		t.Fatalf("validate an active sender: %d, want 400", code)
	}
}
