package dnscheck

import (
	"context"
	"fmt"
	"strings"
)

// maxSPFLookups is RFC 7208's limit on DNS-querying terms.
const maxSPFLookups = 10

// DefaultSPF is the record suggested for a domain without one.
const DefaultSPF = "v=spf1 include:" + MailjetSPF + " ~all"

// SPF checks that the domain has exactly one SPF record and that it
// authorizes Mailjet: include:spf.mailjet.com directly, or through includes
// or a redirect (as Mailjet's own check does).
func (c Checker) SPF(ctx context.Context, domain string) Result {
	r := Result{Check: CheckSPF, Record: domain}
	txts, err := c.lookup(ctx, domain)
	if err != nil {
		return lookupFailed(CheckSPF, domain, err)
	}
	recs := spfRecords(txts)
	switch len(recs) {
	case 0:
		r.Status, r.Detail, r.Fix = Fail, "no SPF record", addTXT(domain, DefaultSPF)
		return r
	case 1:
	default:
		r.Status = Fail
		r.Detail = fmt.Sprintf("%d SPF records (receivers treat this as a permanent error): %q", len(recs), strings.Join(recs, `", "`))
		r.Fix = fmt.Sprintf("replace the SPF records of %q with one TXT record %q", domain, mergeSPF(recs))
		return r
	}
	budget := maxSPFLookups
	via, found, err := c.findInclude(ctx, recs[0], &budget)
	switch {
	case found && via == "":
		r.Status, r.Detail = OK, "SPF record includes "+MailjetSPF
	case found:
		r.Status, r.Detail = OK, "SPF record includes "+MailjetSPF+" via "+via
	case err != nil:
		r.Status, r.Detail = Fail, fmt.Sprintf("cannot evaluate the SPF record %q: %v", recs[0], err)
		r.Fix = fmt.Sprintf("replace TXT record %q %q with %q", domain, recs[0], withMailjet(recs[0]))
	default:
		r.Status, r.Detail = Fail, fmt.Sprintf("SPF record %q does not include %s", recs[0], MailjetSPF)
		r.Fix = fmt.Sprintf("replace TXT record %q %q with %q", domain, recs[0], withMailjet(recs[0]))
	}
	return r
}

func spfRecords(txts []string) []string {
	var out []string
	for _, t := range txts {
		if f := strings.Fields(t); len(f) > 0 && strings.EqualFold(f[0], "v=spf1") {
			out = append(out, strings.Join(f, " "))
		}
	}
	return out
}

// findInclude looks for include:spf.mailjet.com in record and, within the
// lookup budget, in the records it includes or redirects to. via is the
// first-level term that led there ("" when direct).
func (c Checker) findInclude(ctx context.Context, record string, budget *int) (via string, found bool, err error) {
	var nested []string
	for _, term := range strings.Fields(record)[1:] {
		target, ok := spfTarget(term)
		if !ok {
			continue
		}
		if target == MailjetSPF {
			return "", true, nil
		}
		nested = append(nested, target)
	}
	for _, target := range nested {
		if *budget <= 0 {
			return "", false, fmt.Errorf("more than %d DNS lookups", maxSPFLookups)
		}
		*budget--
		txts, lerr := c.lookup(ctx, target)
		if lerr != nil {
			err = lerr
			continue
		}
		for _, rec := range spfRecords(txts) {
			if _, ok, ferr := c.findInclude(ctx, rec, budget); ok {
				return target, true, nil
			} else if ferr != nil {
				err = ferr
			}
		}
	}
	return "", false, err
}

// spfTarget returns the domain of an include: mechanism or redirect= modifier.
func spfTarget(term string) (string, bool) {
	t := strings.ToLower(strings.TrimLeft(term, "+-~?"))
	for _, p := range []string{"include:", "redirect="} {
		if strings.HasPrefix(t, p) {
			return strings.TrimSuffix(t[len(p):], "."), true
		}
	}
	return "", false
}

// withMailjet inserts include:spf.mailjet.com before the record's "all"
// mechanism or redirect (or at the end).
func withMailjet(record string) string {
	f := strings.Fields(record)
	out := []string{f[0]}
	inserted := false
	for _, term := range f[1:] {
		t := strings.ToLower(strings.TrimLeft(term, "+-~?"))
		if !inserted && (t == "all" || strings.HasPrefix(t, "redirect=")) {
			out = append(out, "include:"+MailjetSPF)
			inserted = true
		}
		out = append(out, term)
	}
	if !inserted {
		out = append(out, "include:"+MailjetSPF)
	}
	return strings.Join(out, " ")
}

// mergeSPF merges several SPF records into one: every mechanism once, plus
// include:spf.mailjet.com, then the first record's "all" (default ~all).
func mergeSPF(recs []string) string {
	out := []string{"v=spf1"}
	seen := map[string]bool{}
	all := ""
	for _, rec := range recs {
		for _, term := range strings.Fields(rec)[1:] {
			t := strings.ToLower(strings.TrimLeft(term, "+-~?"))
			switch {
			case t == "all":
				if all == "" {
					all = term
				}
			case strings.HasPrefix(t, "redirect="):
				// a redirect cannot be combined; its target must be
				// included instead
				if inc := "include:" + t[len("redirect="):]; !seen[inc] {
					seen[inc] = true
					out = append(out, inc)
				}
			case !seen[strings.ToLower(term)]:
				seen[strings.ToLower(term)] = true
				out = append(out, term)
			}
		}
	}
	if !seen["include:"+MailjetSPF] {
		out = append(out, "include:"+MailjetSPF)
	}
	if all == "" {
		all = "~all"
	}
	return strings.Join(append(out, all), " ")
}
