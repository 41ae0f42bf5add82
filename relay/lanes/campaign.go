package lanes

import (
	"mime"
	"net/url"
	"regexp"
	"strings"

	"github.com/emersion/go-message/charset"
)

// odooMailing matches the mailing id in an Odoo unsubscribe URL:
// <base>/mailing/<id>/unsubscribe_oneclick?...
var odooMailing = regexp.MustCompile(`/mailing/(\d+)/`)

// MailingCampaign derives a Mailjet campaign name from an Odoo mass
// mailing's List-Unsubscribe header, so that Mailjet groups the mailing in
// its statistics: "odoo-<host>-mailing-<id>" (Mailjet allows letters,
// digits, space, dash and underscore). It returns "" for other mail.
//
// The value may be given raw or unfolded: Odoo's Python email library
// RFC 2047-encodes every header value longer than 77 characters, which real
// unsubscribe URLs always are, and folds it over several lines
// ("=?utf-8?q?=3Chttps=3A//erp=2Eexample=2Ecom/mailing/12/unsu?=" CRLF " =?utf-8?q?...?="),
// so it is unfolded and decoded first.
func MailingCampaign(listUnsubscribe string) string {
	for _, part := range strings.Split(decodeHeader(listUnsubscribe), ",") {
		raw := strings.Trim(strings.TrimSpace(part), "<>")
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			continue
		}
		m := odooMailing.FindStringSubmatch(u.Path)
		if m == nil {
			continue
		}
		host := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
				return r
			}
			return '-'
		}, strings.ToLower(u.Hostname()))
		name := "odoo-" + host + "-mailing-" + m[1]
		if len(name) > 255 {
			name = name[len(name)-255:]
		}
		return name
	}
	return ""
}

// odooOneClick is the path of Odoo's one-click unsubscribe route.
var odooOneClick = regexp.MustCompile(`^/mailing/\d+/unsubscribe_oneclick$`)

// OneClickURL returns the one-click unsubscribe URL of an Odoo mass
// mailing: the http(s) URL in List-Unsubscribe whose path is Odoo's
// /mailing/<id>/unsubscribe_oneclick route, when List-Unsubscribe-Post is
// "List-Unsubscribe=One-Click" (RFC 8058); else "". The value may be RFC
// 2047-encoded and folded, as Odoo writes it (see MailingCampaign). Only
// Odoo's route is taken: the relay POSTs to this URL when the recipient
// unsubscribes at Mailjet, and must not POST to anything a message names.
func OneClickURL(listUnsubscribe, listUnsubscribePost string) string {
	if !strings.EqualFold(strings.TrimSpace(decodeHeader(listUnsubscribePost)), "List-Unsubscribe=One-Click") {
		return ""
	}
	for _, part := range strings.Split(decodeHeader(listUnsubscribe), ",") {
		raw := strings.Trim(strings.TrimSpace(part), "<>")
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || !odooOneClick.MatchString(u.Path) {
			continue
		}
		return u.String()
	}
	return ""
}

// decodeHeader unfolds a header field value (RFC 5322 2.2.3) and decodes
// its RFC 2047 encoded-words (whitespace between adjacent words goes, as the
// RFC says). A value that does not decode is returned unfolded.
func decodeHeader(v string) string {
	v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
	if !strings.Contains(v, "=?") {
		return v
	}
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	if d, err := dec.DecodeHeader(v); err == nil {
		return d
	}
	return v
}
