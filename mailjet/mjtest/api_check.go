package mjtest

import (
	"net/http"
	"strconv"
	"strings"
)

// checkDomain serves POST /v3/REST/dns/{ID|domain}/check. With a lookup
// function (SetLookupTXT) it reads the published DKIM and SPF records the way
// Mailjet does (following SPF includes) and stores the resulting statuses;
// without one it reports the stored statuses.
func (a *API) checkDomain(w http.ResponseWriter, idOrName string) {
	a.mu.Lock()
	d := a.domainLocked(idOrName)
	var dom APIDomain
	if d != nil {
		dom = *d
	}
	lookup := a.lookupTXT
	a.mu.Unlock()
	if d == nil {
		a.writeError(w, http.StatusNotFound, "Object not found")
		return
	}
	res := apiDNSCheckJSON{DKIMErrors: []string{}, SPFErrors: []string{}, SPFRecordsCurrentValues: []string{},
		DKIMStatus: dom.DKIMStatus, SPFStatus: dom.SPFStatus}
	if lookup != nil {
		apiCheckDKIM(lookup, dom, &res)
		apiCheckSPF(lookup, dom, &res)
	} else {
		if res.DKIMStatus == APICheckError {
			res.DKIMErrors = append(res.DKIMErrors, "no DKIM record")
		}
		if res.SPFStatus == APICheckError {
			res.SPFErrors = append(res.SPFErrors, "spf.mailjet.com is not included in the SPF record")
		}
	}
	a.mu.Lock()
	if d := a.domainLocked(idOrName); d != nil {
		d.DKIMStatus, d.SPFStatus, d.LastCheckAt = res.DKIMStatus, res.SPFStatus, a.now()
	}
	a.mu.Unlock()
	a.writeJSON(w, http.StatusOK, apiEnvelope{Count: 1, Data: []any{res}, Total: 1})
}

func apiCheckDKIM(lookup APILookupTXT, d APIDomain, res *apiDNSCheckJSON) {
	txts, _ := lookup(d.DKIMRecordName)
	if len(txts) == 0 {
		res.DKIMStatus = APICheckError
		res.DKIMErrors = append(res.DKIMErrors, "no DKIM record")
		return
	}
	want := apiDKIMKey(d.DKIMRecordValue)
	for _, t := range txts {
		if apiDKIMKey(t) == want {
			res.DKIMStatus, res.DKIMRecordCurrentValue = APICheckOK, t
			return
		}
	}
	res.DKIMStatus, res.DKIMRecordCurrentValue = APICheckError, txts[0]
	res.DKIMErrors = append(res.DKIMErrors, "DKIM record does not match the expected value")
}

// apiDKIMKey returns the p= tag of a DKIM key record without whitespace.
func apiDKIMKey(v string) string {
	for _, tag := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(tag, "=")
		if strings.TrimSpace(k) == "p" {
			return strings.Join(strings.Fields(val), "")
		}
	}
	return strings.Join(strings.Fields(v), "")
}

func apiCheckSPF(lookup APILookupTXT, d APIDomain, res *apiDNSCheckJSON) {
	txts, _ := lookup(d.Domain)
	for _, t := range txts {
		if apiIsSPF(t) {
			res.SPFRecordsCurrentValues = append(res.SPFRecordsCurrentValues, t)
		}
	}
	switch {
	case len(res.SPFRecordsCurrentValues) == 0:
		res.SPFStatus = APICheckNotFound
		res.SPFErrors = append(res.SPFErrors, "no SPF record")
	case len(res.SPFRecordsCurrentValues) > 1:
		res.SPFStatus = APICheckError
		res.SPFErrors = append(res.SPFErrors, "more than one SPF record")
	case apiSPFIncludesMailjet(lookup, res.SPFRecordsCurrentValues[0], 0):
		res.SPFStatus = APICheckOK
	default:
		res.SPFStatus = APICheckError
		res.SPFErrors = append(res.SPFErrors, "spf.mailjet.com is not included in the SPF record")
	}
}

func apiIsSPF(txt string) bool {
	f := strings.Fields(txt)
	return len(f) > 0 && strings.EqualFold(f[0], "v=spf1")
}

// apiSPFIncludesMailjet follows include: and redirect= (at most 10 levels)
// looking for spf.mailjet.com.
func apiSPFIncludesMailjet(lookup APILookupTXT, record string, depth int) bool {
	if depth > 10 {
		return false
	}
	for _, term := range strings.Fields(record)[1:] {
		lt := strings.ToLower(strings.TrimLeft(term, "+?~-"))
		var target string
		switch {
		case strings.HasPrefix(lt, "include:"):
			target = lt[len("include:"):]
		case strings.HasPrefix(lt, "redirect="):
			target = lt[len("redirect="):]
		default:
			continue
		}
		target = strings.TrimSuffix(target, ".")
		if target == "spf.mailjet.com" {
			return true
		}
		txts, _ := lookup(target)
		for _, t := range txts {
			if apiIsSPF(t) && apiSPFIncludesMailjet(lookup, t, depth+1) {
				return true
			}
		}
	}
	return false
}

// validateSender serves POST /v3/REST/sender/{ID}/validate: 400 when the
// sender is already active; otherwise 200 with the outcome, activating the
// sender when its domain publishes the ownership TXT record.
func (a *API) validateSender(w http.ResponseWriter, id string) {
	a.mu.Lock()
	var s *APISender
	for _, c := range a.senders {
		if strconv.FormatInt(c.ID, 10) == id {
			s = c
		}
	}
	var email, status string
	var dom *APIDomain
	if s != nil {
		email, status = s.Email, s.Status
		_, domain, _ := strings.Cut(email, "@")
		if d := a.domainLocked(domain); d != nil {
			c := *d
			dom = &c
		}
	}
	lookup := a.lookupTXT
	a.mu.Unlock()
	switch {
	case s == nil:
		a.writeError(w, http.StatusNotFound, "Object not found")
		return
	case status == APIStatusActive:
		a.writeError(w, http.StatusBadRequest, "Sender is already active")
		return
	}
	if lookup != nil && dom != nil {
		name := dom.OwnerShipTokenRecordName
		if !strings.HasSuffix(strings.ToLower(name), "."+dom.Domain) {
			name += "." + dom.Domain
		}
		txts, _ := lookup(name)
		for _, t := range txts {
			if strings.TrimSpace(t) == dom.OwnerShipToken {
				_ = a.SetSenderStatus(email, APIStatusActive)
				a.writeJSON(w, http.StatusOK, apiEnvelope{Count: 1, Total: 1,
					Data: []any{apiValidateJSON{Errors: map[string]string{}, ValidationMethod: "DNS"}}})
				return
			}
		}
	}
	a.writeJSON(w, http.StatusOK, apiEnvelope{Count: 1, Total: 1, Data: []any{apiValidateJSON{
		Errors: map[string]string{
			"DNSValidationError":  "No TXT record with the ownership token was found",
			"FileValidationError": "The validation file was not found on the web site",
		},
		GlobalError: "Neither the file nor the DNS TXT record have been found. Please check your setup and try again.",
	}}})
}
