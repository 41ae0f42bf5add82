package sendapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/mjrelay/mjrelay/mailjet"
)

// msgOutcome is what happened to one API message of a call.
type msgOutcome struct {
	status mailjet.Status
	reply  string
	sent   map[string]sentRcpt // lower-case email → ids (successes only)
}

type callOutcome struct {
	msgs  []msgOutcome
	reply string // one line for Result.Reply
}

func uniform(n int, st mailjet.Status, reply string) callOutcome {
	out := callOutcome{msgs: make([]msgOutcome, n), reply: reply}
	for i := range out.msgs {
		out.msgs[i] = msgOutcome{status: st, reply: reply}
	}
	return out
}

// interpret classifies an answer of /v3.1/send:
//   - a Messages array with one entry per message sent (200, or 400/403 when
//     some failed): each message gets its own outcome;
//   - 429, 5xx: temporary;
//   - 401/403 without per-message results: the account or key is refused,
//     temporary too (the admin fixes the keys, the queue drains);
//   - other 4xx with a root-level error (e.g. mj-0002, mj-0011): permanent;
//   - 3xx, 404, 405 and the like mean a wrong endpoint: temporary;
//   - another 2xx answer means accepted, even if unreadable.
func (t *Target) interpret(code int, body []byte, n int) callOutcome {
	var r sendResponse
	jsonErr := json.Unmarshal(body, &r)
	if jsonErr == nil && len(r.Messages) == n && n > 0 {
		return t.perMessage(code, r.Messages)
	}
	detail := errorDetail(&r, jsonErr, body)
	prefix := fmt.Sprintf("HTTP %d", code)
	switch {
	case code == http.StatusTooManyRequests:
		return uniform(n, mailjet.TempFail, join(prefix, detail, "rate limit exceeded"))
	case code >= 500:
		return uniform(n, mailjet.TempFail, join(prefix, detail, http.StatusText(code)))
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return uniform(n, mailjet.TempFail, join(prefix, detail, "authentication failed")+
			fmt.Sprintf(" (API key %s; check the key pair in the relay's configuration)", mailjet.MaskKey(t.cfg.APIKey)))
	case code/100 == 2:
		reply := join(prefix, "accepted, but the answer had no per-message results", "")
		return uniform(n, mailjet.Delivered, reply)
	case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge || code == http.StatusUnprocessableEntity:
		return uniform(n, mailjet.PermFail, join(prefix, detail, http.StatusText(code)))
	}
	return uniform(n, mailjet.TempFail, join(prefix, detail, http.StatusText(code))+" (check the Send API URL)")
}

func (t *Target) perMessage(code int, results []messageResult) callOutcome {
	out := callOutcome{msgs: make([]msgOutcome, len(results))}
	var sent, failed int
	var firstErr, firstUUID string
	sandbox := t.cfg.SandboxMode
	for i, mr := range results {
		if strings.EqualFold(mr.Status, "success") {
			sent++
			o := msgOutcome{status: mailjet.Delivered, sent: map[string]sentRcpt{}}
			for _, l := range [][]sentRcpt{mr.To, mr.Cc, mr.Bcc} {
				for _, s := range l {
					o.sent[strings.ToLower(strings.TrimSpace(s.Email))] = s
					if firstUUID == "" {
						firstUUID = s.MessageUUID
					}
				}
			}
			o.reply = "sent"
			if sandbox {
				o.reply = "sandbox mode: accepted, not sent"
			}
			out.msgs[i] = o
			continue
		}
		failed++
		st, reply := messageErrors(mr)
		out.msgs[i] = msgOutcome{status: st, reply: reply}
		if firstErr == "" {
			firstErr = reply
		}
	}
	switch {
	case failed == 0 && sandbox:
		out.reply = fmt.Sprintf("HTTP %d sandbox mode: %d message(s) validated, not sent", code, sent)
	case failed == 0:
		out.reply = fmt.Sprintf("HTTP %d %d message(s) sent, MessageUUID %s", code, sent, firstUUID)
	case sent == 0:
		out.reply = fmt.Sprintf("HTTP %d %s", code, firstErr)
	default:
		out.reply = fmt.Sprintf("HTTP %d %d message(s) sent, %d refused: %s", code, sent, failed, firstErr)
	}
	return out
}

// messageErrors turns a failed message's Errors into an outcome: permanent
// unless every error is a rate limit, a server error or an auth failure.
func messageErrors(mr messageResult) (mailjet.Status, string) {
	if len(mr.Errors) == 0 {
		return mailjet.TempFail, oneLine(fmt.Sprintf("message status %q without errors", mr.Status), 300)
	}
	temp := true
	parts := make([]string, 0, len(mr.Errors))
	for _, e := range mr.Errors {
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("%s %d %s", e.ErrorCode, e.StatusCode, e.ErrorMessage)))
		if !(e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500 || e.StatusCode == http.StatusUnauthorized) {
			temp = false
		}
	}
	st := mailjet.PermFail
	if temp {
		st = mailjet.TempFail
	}
	return st, oneLine(strings.Join(parts, "; "), 500)
}

// errorDetail is the error text of a non per-message answer: Mailjet's
// ErrorCode and ErrorMessage when it sent JSON, else the start of the body
// (429 comes as text/html "Rate limit exceeded").
func errorDetail(r *sendResponse, jsonErr error, body []byte) string {
	if jsonErr == nil {
		if r.ErrorMessage != "" || r.ErrorCode != "" {
			return strings.TrimSpace(r.ErrorCode + " " + r.ErrorMessage)
		}
		if len(r.Errors) > 0 {
			e := r.Errors[0]
			return strings.TrimSpace(e.ErrorCode + " " + e.ErrorMessage)
		}
		return ""
	}
	s := string(body)
	if i := strings.Index(strings.ToLower(s), "<body"); i >= 0 {
		s = s[i:]
	}
	return oneLine(stripTags(s), 200)
}

func applyOutcome(res *mailjet.Result, m *mailjet.Message, idx []int, o msgOutcome) {
	for _, i := range idx {
		rr := mailjet.RcptResult{Rcpt: m.Rcpts[i], Status: o.status, Reply: mailjet.Reply{Text: o.reply}}
		if o.status == mailjet.Delivered && o.sent != nil {
			if s, ok := o.sent[strings.ToLower(strings.TrimSpace(m.Rcpts[i]))]; ok {
				rr.MessageID, rr.MessageUUID = s.MessageID, s.MessageUUID
				if s.MessageUUID != "" {
					rr.Reply.Text = fmt.Sprintf("%s, MessageID %d, MessageUUID %s", o.reply, s.MessageID, s.MessageUUID)
				}
			} else {
				rr.Reply.Text = o.reply + " (no id for this recipient in the answer)"
			}
		}
		res.Rcpts[i] = rr
	}
}

func summary(replies []string) string {
	if len(replies) == 1 {
		return replies[0]
	}
	return oneLine(fmt.Sprintf("%d calls: %s", len(replies), strings.Join(replies, "; ")), 1000)
}

func join(prefix, detail, fallback string) string {
	if detail == "" {
		detail = fallback
	}
	return strings.TrimSpace(prefix + " " + detail)
}

// oneLine collapses whitespace and cuts s to max bytes (on a rune boundary).
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "?")), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}
