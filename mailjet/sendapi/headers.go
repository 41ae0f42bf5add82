package sendapi

import (
	"encoding/json"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/mjrelay/mjrelay/mailjet"
)

// wordDecoder decodes RFC 2047 encoded words in any charset go-message knows.
// It holds no state.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// forbidden are the headers the Send API refuses in Headers (error
// send-0011), lower case. Those with a v3.1 property are mapped in
// readHeader; the others are dropped.
var forbidden = map[string]bool{
	"from": true, "sender": true, "subject": true, "to": true, "cc": true, "bcc": true,
	"return-path": true, "delivered-to": true, "dkim-signature": true,
	"domainkey-status": true, "received-spf": true, "authentication-results": true,
	"received": true, "x-mailjet-prio": true, "x-mailjet-debug": true,
	"user-agent": true, "x-mailer": true, "x-mj-customid": true,
	"x-mj-eventpayload": true, "x-mj-vars": true, "x-mj-templateerrordeliver": true,
	"x-mj-templateerrorreporting": true, "x-mj-templatelanguage": true,
	"x-mailjet-trackopen": true, "x-mailjet-trackclick": true, "x-mj-templateid": true,
	"x-mj-workflowid": true, "x-feedback-id": true, "x-mailjet-segmentation": true,
	"list-id": true, "x-mj-mid": true, "x-mj-errormessage": true, "date": true,
	"x-csa-complaints": true, "message-id": true, "x-mailjet-campaign": true,
	"x-mj-statisticscontactslistid": true,
}

// IsForbiddenHeader reports whether the Send API refuses name in Headers.
func IsForbiddenHeader(name string) bool { return forbidden[strings.ToLower(name)] }

// dropped are headers that are allowed but would be wrong in the message
// Mailjet builds: the MIME structure headers (the API rebuilds the MIME
// tree) and ARC signatures over the original bytes.
var dropped = map[string]bool{
	"mime-version": true, "content-type": true, "content-transfer-encoding": true,
	"content-disposition": true, "content-id": true, "content-description": true,
	"arc-seal": true, "arc-message-signature": true, "arc-authentication-results": true,
}

// headerData is what the top-level header gives: the message without its
// body and recipients, plus the visible To and Cc lists.
type headerData struct {
	msg    Message
	to, cc []*mail.Address
}

// readHeader maps the top-level header. The client's X-Mailjet-*/X-MJ-*
// headers win over the relay's hints and queue id.
func readHeader(h textproto.Header, m *mailjet.Message) (*headerData, error) {
	hd := &headerData{msg: Message{Headers: map[string]string{}}}
	msg := &hd.msg
	mh := mail.Header{Header: message.Header{Header: h}}
	var prio *int
	var campaign string
	var dedup, dedupSet bool
	fields := h.Fields()
	for fields.Next() {
		key := fields.Key()
		low := strings.ToLower(key)
		raw := fields.Value()
		val := decodeWords(raw)
		switch low {
		case "from":
			if msg.From != nil {
				return nil, unsupported("more than one From header")
			}
			l, err := mail.ParseAddressList(raw)
			if err != nil || len(l) != 1 {
				return nil, unsupported("the From header must hold exactly one valid address")
			}
			msg.From = address(l[0])
		case "reply-to":
			l, err := mail.ParseAddressList(raw)
			if err == nil && len(l) == 1 && msg.ReplyTo == nil {
				msg.ReplyTo = address(l[0])
			} else {
				// The API takes one ReplyTo; Reply-To is not a forbidden header.
				hd.addHeader(fields, "Reply-To", val)
			}
		case "to", "cc":
			l, err := mail.ParseAddressList(raw)
			if err != nil {
				return nil, unsupported("cannot parse the %s header: %v", key, err)
			}
			if low == "to" {
				hd.to = append(hd.to, l...)
			} else {
				hd.cc = append(hd.cc, l...)
			}
		case "subject":
			if msg.Subject != "" {
				continue
			}
			s, err := mh.Subject()
			if err != nil {
				s = val
			}
			msg.Subject = cleanLine(s)
			if utf8.RuneCountInString(msg.Subject) > MaxSubjectChars {
				return nil, unsupported("the subject is longer than the Send API's %d characters", MaxSubjectChars)
			}
		case "x-mailjet-prio":
			if n, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && n >= 0 && n <= 3 {
				prio = &n
			}
		case "x-mailjet-campaign":
			campaign = cleanLine(val)
		case "x-mailjet-deduplicatecampaign":
			dedupSet = true
			switch strings.ToLower(strings.TrimSpace(val)) {
			case "true", "yes", "y", "1":
				dedup = true
			}
		case "x-mailjet-trackopen":
			msg.TrackOpens = tracking(val)
		case "x-mailjet-trackclick":
			msg.TrackClicks = tracking(val)
		case "x-mj-customid":
			msg.CustomID = strings.TrimSpace(val)
		case "x-mj-eventpayload":
			msg.EventPayload = strings.TrimSpace(val)
		case "x-mj-monitoringcategory":
			msg.MonitoringCategory = cleanLine(val)
		case "x-mj-templateid":
			if n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64); err == nil && n > 0 {
				msg.TemplateID = n
			}
		case "x-mj-templatelanguage":
			msg.TemplateLanguage = isTrue(val)
		case "x-mj-templateerrorreporting":
			if a, err := mail.ParseAddress(raw); err == nil {
				msg.TemplateErrorReporting = address(a)
			}
		case "x-mj-templateerrordeliver":
			v := strings.ToLower(strings.TrimSpace(val))
			msg.TemplateErrorDeliver = v == "deliver" || isTrue(v)
		case "x-mj-vars":
			var obj map[string]json.RawMessage
			if json.Unmarshal([]byte(val), &obj) == nil && obj != nil {
				msg.Variables = json.RawMessage(strings.TrimSpace(val))
			}
		default:
			if forbidden[low] || dropped[low] {
				continue
			}
			hd.addHeader(fields, key, val)
		}
	}
	if msg.From == nil {
		return nil, unsupported("no From header")
	}
	if msg.CustomID == "" {
		msg.CustomID = m.ID
	}
	if prio == nil && m.Hints.Priority >= 0 && m.Hints.Priority <= 3 {
		p := m.Hints.Priority
		prio = &p
	}
	msg.Priority = prio
	if campaign == "" {
		campaign = m.Hints.Campaign
	}
	msg.CustomCampaign = campaign
	// DeduplicateCampaign without a campaign is refused (send-0012).
	msg.DeduplicateCampaign = dedupSet && dedup && campaign != ""
	// TemplateErrorReporting/Deliver without TemplateLanguage: send-0016.
	if !msg.TemplateLanguage {
		msg.TemplateErrorReporting, msg.TemplateErrorDeliver = nil, false
	}
	if len(msg.Headers) == 0 {
		msg.Headers = nil
	}
	return hd, nil
}

// addHeader keeps a header for Headers, under the name as the client spelled
// it. The API takes one value per name: the first occurrence wins.
func (hd *headerData) addHeader(fields textproto.HeaderFields, key, val string) {
	if raw, err := fields.Raw(); err == nil {
		if i := strings.IndexByte(string(raw), ':'); i > 0 {
			key = strings.TrimSpace(string(raw[:i]))
		}
	}
	val = cleanLine(val)
	if val == "" {
		return
	}
	for k := range hd.msg.Headers {
		if strings.EqualFold(k, key) {
			return
		}
	}
	hd.msg.Headers[key] = val
}

func decodeWords(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			return d
		}
	}
	return s
}

func address(a *mail.Address) *Address {
	return &Address{Email: a.Address, Name: cleanLine(a.Name)}
}

func tracking(v string) string {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "0", "disabled":
		return "disabled"
	case "1", "enabled":
		return "enabled"
	case "account_default":
		return "account_default"
	}
	return ""
}

func isTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "y":
		return true
	}
	return false
}
