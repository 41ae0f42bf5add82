package mjtest

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// apiRESTPrefix is where the REST resources live.
const apiRESTPrefix = "/v3/REST/"

const apiUnauthorizedMessage = "API key authentication/authorization failure. You may be unauthorized to access the API or your API key may be expired. Visit API keys management section to check your keys."

// apiError is the body of REST error answers, e.g.
// {"ErrorInfo":"","ErrorMessage":"Object not found","StatusCode":404}.
type apiError struct {
	ErrorInfo    string `json:"ErrorInfo"`
	ErrorMessage string `json:"ErrorMessage"`
	StatusCode   int    `json:"StatusCode"`
}

type apiEnvelope struct {
	Count int `json:"Count"`
	Data  any `json:"Data"`
	Total int `json:"Total"`
}

type apiSenderJSON struct {
	CreatedAt       string `json:"CreatedAt"`
	DNSID           int64  `json:"DNSID"`
	Email           string `json:"Email"`
	EmailType       string `json:"EmailType"`
	Filename        string `json:"Filename"`
	ID              int64  `json:"ID"`
	IsDefaultSender bool   `json:"IsDefaultSender"`
	Name            string `json:"Name"`
	Status          string `json:"Status"`
}

type apiDomainJSON struct {
	DKIMRecordName           string `json:"DKIMRecordName"`
	DKIMRecordValue          string `json:"DKIMRecordValue"`
	DKIMStatus               string `json:"DKIMStatus"`
	Domain                   string `json:"Domain"`
	ID                       int64  `json:"ID"`
	IsCheckInProgress        bool   `json:"IsCheckInProgress"`
	LastCheckAt              string `json:"LastCheckAt"`
	OwnerShipToken           string `json:"OwnerShipToken"`
	OwnerShipTokenRecordName string `json:"OwnerShipTokenRecordName"`
	SPFRecordValue           string `json:"SPFRecordValue"`
	SPFStatus                string `json:"SPFStatus"`
}

type apiDNSCheckJSON struct {
	DKIMErrors              []string `json:"DKIMErrors"`
	DKIMRecordCurrentValue  string   `json:"DKIMRecordCurrentValue"`
	DKIMStatus              string   `json:"DKIMStatus"`
	SPFErrors               []string `json:"SPFErrors"`
	SPFRecordsCurrentValues []string `json:"SPFRecordsCurrentValues"`
	SPFStatus               string   `json:"SPFStatus"`
}

type apiValidateJSON struct {
	Errors           map[string]string `json:"Errors"`
	GlobalError      string            `json:"GlobalError"`
	ValidationMethod string            `json:"ValidationMethod"`
}

func (a *API) serveHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests++
	a.byPath[r.URL.Path]++
	drop, down := a.dropConns, a.down
	limited := a.rateLimited > 0
	if limited {
		a.rateLimited--
	}
	emptyUnauthorized := a.emptyUnauthorized
	a.mu.Unlock()

	switch {
	case drop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case down:
		a.writeText(w, http.StatusServiceUnavailable, "<html><body><h1>503 Service Unavailable</h1></body></html>")
		return
	case limited:
		a.writeText(w, http.StatusTooManyRequests, "Rate limit exceeded")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(a.apiKey)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(a.secretKey)) != 1 {
		if emptyUnauthorized {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		a.writeJSON(w, http.StatusUnauthorized, map[string]any{
			"ErrorIdentifier": apiRandomUUID(),
			"StatusCode":      http.StatusUnauthorized,
			"ErrorMessage":    apiUnauthorizedMessage,
		})
		return
	}

	path := r.URL.Path
	if strings.EqualFold(strings.TrimSuffix(path, "/"), apiSendPath) {
		a.serveSend(w, r)
		return
	}
	if len(path) < len(apiRESTPrefix) || !strings.EqualFold(path[:len(apiRESTPrefix)], apiRESTPrefix) {
		a.writeError(w, http.StatusNotFound, "Object not found")
		return
	}
	segs := strings.Split(strings.Trim(path[len(apiRESTPrefix):], "/"), "/")
	resource := strings.ToLower(segs[0])
	switch {
	case resource == "sender" && len(segs) == 1:
		a.handle(w, r, http.MethodGet, a.listSenders)
	case resource == "sender" && len(segs) == 2:
		a.handle(w, r, http.MethodGet, func(w http.ResponseWriter, r *http.Request) { a.getSender(w, segs[1]) })
	case resource == "sender" && len(segs) == 3 && strings.EqualFold(segs[2], "validate"):
		a.handle(w, r, http.MethodPost, func(w http.ResponseWriter, r *http.Request) { a.validateSender(w, segs[1]) })
	case resource == "dns" && len(segs) == 1:
		a.handle(w, r, http.MethodGet, a.listDomains)
	case resource == "dns" && len(segs) == 2:
		a.handle(w, r, http.MethodGet, func(w http.ResponseWriter, r *http.Request) { a.getDomain(w, segs[1]) })
	case resource == "dns" && len(segs) == 3 && strings.EqualFold(segs[2], "check"):
		a.handle(w, r, http.MethodPost, func(w http.ResponseWriter, r *http.Request) { a.checkDomain(w, segs[1]) })
	case len(segs) == 1 && (resource == "apikey" || resource == "user" || resource == "myprofile"):
		a.handle(w, r, http.MethodGet, func(w http.ResponseWriter, r *http.Request) { a.account(w, resource) })
	default:
		a.writeError(w, http.StatusNotFound, "Object not found")
	}
}

func (a *API) handle(w http.ResponseWriter, r *http.Request, method string, h http.HandlerFunc) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		a.writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return
	}
	h(w, r)
}

// apiQuery holds the query parameters, matched case-insensitively.
type apiQuery map[string]string

func (a *API) parseQuery(w http.ResponseWriter, r *http.Request, filters ...string) (apiQuery, bool) {
	allowed := map[string]bool{"limit": true, "offset": true, "sort": true, "countonly": true}
	for _, f := range filters {
		allowed[strings.ToLower(f)] = true
	}
	q := apiQuery{}
	for k, v := range r.URL.Query() {
		lk := strings.ToLower(k)
		if !allowed[lk] {
			a.writeError(w, http.StatusBadRequest, "Unknown filter or parameter: "+k)
			return nil, false
		}
		q[lk] = v[len(v)-1]
	}
	return q, true
}

func (q apiQuery) boolean(key string) (val, set, ok bool) {
	v, set := q[key]
	if !set {
		return false, false, true
	}
	switch strings.ToLower(v) {
	case "true", "1":
		return true, true, true
	case "false", "0":
		return false, true, true
	}
	return false, true, false
}

// page applies countOnly, Limit (default 10, max 1000) and Offset and writes
// the envelope.
func (a *API) page(w http.ResponseWriter, q apiQuery, items []any) {
	limit, offset := 10, 0
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			a.writeError(w, http.StatusBadRequest, "Invalid value for Limit: "+v)
			return
		}
		if n > 0 {
			limit = min(n, 1000)
		}
	}
	if v, ok := q["offset"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			a.writeError(w, http.StatusBadRequest, "Invalid value for Offset: "+v)
			return
		}
		offset = n
	}
	total := len(items)
	if c, set, ok := q.boolean("countonly"); !ok {
		a.writeError(w, http.StatusBadRequest, "Invalid value for countOnly")
		return
	} else if set && c {
		a.writeJSON(w, http.StatusOK, apiEnvelope{Count: 0, Data: []any{}, Total: total})
		return
	}
	start := min(offset, total)
	end := min(start+limit, total)
	a.writeJSON(w, http.StatusOK, apiEnvelope{Count: end - start, Data: items[start:end], Total: total})
}

// sortBy orders by ID (the default) or by a named string field, with an
// optional " DESC" (the SDK sends "Prop+DESC", which decodes to a space).
func (a *API) sortBy(w http.ResponseWriter, q apiQuery, ids []int64, keys map[string][]string) ([]int, bool) {
	idx := make([]int, len(ids))
	for i := range idx {
		idx[i] = i
	}
	spec := strings.Fields(q["sort"])
	prop, desc := "id", false
	if len(spec) > 0 {
		prop = strings.ToLower(spec[0])
		if len(spec) > 1 {
			desc = strings.EqualFold(spec[1], "DESC")
		}
	}
	less := func(i, j int) bool { return ids[idx[i]] < ids[idx[j]] }
	if prop != "id" {
		k, ok := keys[prop]
		if !ok {
			a.writeError(w, http.StatusBadRequest, "Invalid sort property: "+spec[0])
			return nil, false
		}
		less = func(i, j int) bool { return k[idx[i]] < k[idx[j]] }
	}
	sort.SliceStable(idx, func(i, j int) bool {
		if desc {
			return less(j, i)
		}
		return less(i, j)
	})
	return idx, true
}

func (a *API) listSenders(w http.ResponseWriter, r *http.Request) {
	q, ok := a.parseQuery(w, r, "Email", "Domain", "LocalPart", "Status", "DnsID", "IsDomainSender", "ShowDeleted", "ConfirmKey")
	if !ok {
		return
	}
	showDeleted, _, ok1 := q.boolean("showdeleted")
	isDomain, isDomainSet, ok2 := q.boolean("isdomainsender")
	if !ok1 || !ok2 {
		a.writeError(w, http.StatusBadRequest, "Invalid boolean value")
		return
	}
	a.mu.Lock()
	var matched []apiSenderJSON
	for _, s := range a.senders {
		local, domain, _ := strings.Cut(s.Email, "@")
		switch {
		case s.Status == APIStatusDeleted && !showDeleted,
			q.has("email") && !strings.EqualFold(q["email"], s.Email),
			q.has("domain") && !strings.EqualFold(q["domain"], domain),
			q.has("localpart") && !strings.EqualFold(q["localpart"], local),
			q.has("status") && !strings.EqualFold(q["status"], s.Status),
			isDomainSet && isDomain != (local == "*"),
			q.has("dnsid") && q["dnsid"] != strconv.FormatInt(a.dnsIDLocked(domain), 10),
			q.has("confirmkey"): // confirmation keys are never handed out here
			continue
		}
		matched = append(matched, a.senderJSONLocked(s))
	}
	a.mu.Unlock()
	ids := make([]int64, len(matched))
	emails := make([]string, len(matched))
	for i, s := range matched {
		ids[i], emails[i] = s.ID, strings.ToLower(s.Email)
	}
	order, ok := a.sortBy(w, q, ids, map[string][]string{"email": emails})
	if !ok {
		return
	}
	items := make([]any, len(order))
	for i, k := range order {
		items[i] = matched[k]
	}
	a.page(w, q, items)
}

func (q apiQuery) has(key string) bool { _, ok := q[key]; return ok }

func (a *API) getSender(w http.ResponseWriter, idOrEmail string) {
	a.mu.Lock()
	var out []any
	for _, s := range a.senders {
		if strconv.FormatInt(s.ID, 10) == idOrEmail || strings.EqualFold(s.Email, idOrEmail) {
			out = append(out, a.senderJSONLocked(s))
			break
		}
	}
	a.mu.Unlock()
	if out == nil {
		a.writeError(w, http.StatusNotFound, "Object not found")
		return
	}
	a.writeJSON(w, http.StatusOK, apiEnvelope{Count: 1, Data: out, Total: 1})
}

func (a *API) senderJSONLocked(s *APISender) apiSenderJSON {
	_, domain, _ := strings.Cut(s.Email, "@")
	return apiSenderJSON{
		CreatedAt: apiTime(s.CreatedAt), DNSID: a.dnsIDLocked(domain), Email: s.Email,
		EmailType: s.EmailType, ID: s.ID, IsDefaultSender: s.IsDefaultSender, Name: s.Name, Status: s.Status,
	}
}

// dnsIDLocked is the ID of the domain's dns entry, -1 when there is none (as
// seen in real answers for unvalidated senders).
func (a *API) dnsIDLocked(domain string) int64 {
	for _, d := range a.domains {
		if strings.EqualFold(d.Domain, domain) {
			return d.ID
		}
	}
	return -1
}

func (a *API) listDomains(w http.ResponseWriter, r *http.Request) {
	q, ok := a.parseQuery(w, r, "IsCheckInProgress", "IsSenderIdentified", "IsYahooFBL", "MinLastCheckAt", "MaxLastCheckAt", "SPFStatus")
	if !ok {
		return
	}
	inProgress, inProgressSet, ok1 := q.boolean("ischeckinprogress")
	identified, identifiedSet, ok2 := q.boolean("issenderidentified")
	yahoo, yahooSet, ok3 := q.boolean("isyahoofbl")
	var minAt, maxAt time.Time
	var err1, err2 error
	if v := q["minlastcheckat"]; v != "" {
		minAt, err1 = time.Parse(time.RFC3339, v)
	}
	if v := q["maxlastcheckat"]; v != "" {
		maxAt, err2 = time.Parse(time.RFC3339, v)
	}
	if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil {
		a.writeError(w, http.StatusBadRequest, "Invalid filter value")
		return
	}
	a.mu.Lock()
	var matched []apiDomainJSON
	for _, d := range a.domains {
		switch {
		case inProgressSet && inProgress != d.IsCheckInProgress,
			identifiedSet && identified != a.identifiedLocked(d.Domain),
			yahooSet && yahoo, // the emulator has no Yahoo feedback loops
			!minAt.IsZero() && (d.LastCheckAt.IsZero() || d.LastCheckAt.Before(minAt)),
			!maxAt.IsZero() && (d.LastCheckAt.IsZero() || d.LastCheckAt.After(maxAt)),
			q.has("spfstatus") && !strings.EqualFold(q["spfstatus"], d.SPFStatus):
			continue
		}
		matched = append(matched, apiDomainToJSON(d))
	}
	a.mu.Unlock()
	ids := make([]int64, len(matched))
	names := make([]string, len(matched))
	for i, d := range matched {
		ids[i], names[i] = d.ID, d.Domain
	}
	order, ok := a.sortBy(w, q, ids, map[string][]string{"domain": names})
	if !ok {
		return
	}
	items := make([]any, len(order))
	for i, k := range order {
		items[i] = matched[k]
	}
	a.page(w, q, items)
}

// identifiedLocked reports whether an Active sender exists in domain.
func (a *API) identifiedLocked(domain string) bool {
	for _, s := range a.senders {
		_, d, _ := strings.Cut(s.Email, "@")
		if s.Status == APIStatusActive && strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

func apiDomainToJSON(d *APIDomain) apiDomainJSON {
	return apiDomainJSON{
		DKIMRecordName: d.DKIMRecordName, DKIMRecordValue: d.DKIMRecordValue, DKIMStatus: d.DKIMStatus,
		Domain: d.Domain, ID: d.ID, IsCheckInProgress: d.IsCheckInProgress, LastCheckAt: apiTime(d.LastCheckAt),
		OwnerShipToken: d.OwnerShipToken, OwnerShipTokenRecordName: d.OwnerShipTokenRecordName,
		SPFRecordValue: d.SPFRecordValue, SPFStatus: d.SPFStatus,
	}
}

func (a *API) getDomain(w http.ResponseWriter, idOrName string) {
	a.mu.Lock()
	d := a.domainLocked(idOrName)
	var out apiDomainJSON
	if d != nil {
		out = apiDomainToJSON(d)
	}
	a.mu.Unlock()
	if d == nil {
		a.writeError(w, http.StatusNotFound, "Object not found")
		return
	}
	a.writeJSON(w, http.StatusOK, apiEnvelope{Count: 1, Data: []any{out}, Total: 1})
}

func (a *API) account(w http.ResponseWriter, resource string) {
	created := apiTime(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	var item any
	switch resource {
	case "apikey":
		item = map[string]any{"ACL": "", "APIKey": a.apiKey, "CreatedAt": created, "ID": 1, "IsActive": true,
			"IsMaster": true, "Name": "Master API Key", "QuarantineValue": 0, "Runlevel": "Normal",
			"SecretKey": "", "TrackHost": "", "UserID": 1}
	case "user":
		item = map[string]any{"ACL": "", "CreatedAt": created, "Email": "owner@example.com", "ID": 1,
			"LastIp": "", "LastLoginAt": "", "Locale": "en_US", "MaxAllowedAPIKeys": 5, "Timezone": "",
			"Username": "owner@example.com", "WarnedRatelimitAt": ""}
	default:
		item = map[string]any{"ID": 1, "UserID": 1, "CompanyName": "mjtest", "Firstname": "", "Lastname": ""}
	}
	a.writeJSON(w, http.StatusOK, apiEnvelope{Count: 1, Data: []any{item}, Total: 1})
}

func (a *API) writeError(w http.ResponseWriter, status int, msg string) {
	a.writeJSON(w, status, apiError{ErrorInfo: "", ErrorMessage: msg, StatusCode: status})
}

func (a *API) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	omit := a.omitContentType
	a.mu.Unlock()
	if !omit || status >= 300 {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header()["Content-Type"] = nil // suppress net/http's content sniffing too
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (a *API) writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func apiRandomUUID() string {
	h := apiRandomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
