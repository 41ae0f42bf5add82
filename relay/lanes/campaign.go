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
