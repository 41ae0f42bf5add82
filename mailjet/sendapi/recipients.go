package sendapi

import (
	"strings"

	"github.com/emersion/go-message/mail"
)

// split decides who gets the message, and how they see each other.
//
// The envelope (RCPT TO) is authoritative: Mailjet sends to every To, Cc and
// Bcc entry, and the API has no display-only recipients, so
//   - To = the envelope recipients that appear in the To header (with the
//     header's display name and spelling), in header order;
//   - Cc = the envelope recipients that appear in Cc;
//   - Bcc = the other envelope recipients, in envelope order;
//   - header recipients that are not in the envelope are dropped: they are
//     not sent to and no longer shown. This is what makes Odoo's split
//     deliveries right (one SMTP transaction per recipient, all with the same
//     To header): each transaction reaches only its own recipients.
//
// Addresses are compared case-insensitively. When no envelope recipient is
// in To, the Cc recipients move to To (the API needs a To; they keep seeing
// each other); when there are only blind recipients, each gets its own copy
// addressed To them alone, so that no blind recipient is shown to another.
func split(hd *headerData, rcpts []string) (*Converted, error) {
	index := map[string]int{} // lower-case address → first index in rcpts
	var order []int           // indices of distinct envelope recipients
	for i, r := range rcpts {
		k := strings.ToLower(strings.TrimSpace(r))
		if _, dup := index[k]; dup {
			continue
		}
		index[k] = i
		order = append(order, i)
	}
	used := map[string]bool{}
	pick := func(l []*mail.Address) ([]Address, []int) {
		var out []Address
		var idx []int
		for _, a := range l {
			k := strings.ToLower(a.Address)
			i, ok := index[k]
			if !ok || used[k] {
				continue
			}
			used[k] = true
			out = append(out, Address{Email: a.Address, Name: cleanLine(a.Name)})
			idx = append(idx, i)
		}
		return out, idx
	}
	to, toIdx := pick(hd.to)
	cc, ccIdx := pick(hd.cc)
	var bcc []Address
	var bccIdx []int
	for _, i := range order {
		if !used[strings.ToLower(strings.TrimSpace(rcpts[i]))] {
			bcc = append(bcc, Address{Email: strings.TrimSpace(rcpts[i])})
			bccIdx = append(bccIdx, i)
		}
	}
	if len(to) == 0 && len(cc) > 0 {
		to, toIdx, cc, ccIdx = cc, ccIdx, nil, nil
	}

	var conv Converted
	if len(to) > 0 {
		for _, f := range []struct {
			name string
			n    int
		}{{"To", len(to)}, {"Cc", len(cc)}, {"Bcc", len(bcc)}} {
			if f.n > MaxRcptsPerField {
				return nil, unsupported("%d %s recipients; the Send API takes at most %d per field", f.n, f.name, MaxRcptsPerField)
			}
		}
		msg := hd.msg
		msg.To, msg.Cc, msg.Bcc = to, cc, bcc
		conv.Messages = []Message{msg}
		conv.Rcpts = [][]int{rcptsOf(rcpts, toIdx, ccIdx, bccIdx)}
		return &conv, nil
	}
	if len(bcc) > MaxMessagesPerCall {
		return nil, unsupported("%d blind recipients and no To; at most %d are sent as separate copies", len(bcc), MaxMessagesPerCall)
	}
	for n, a := range bcc {
		msg := hd.msg
		msg.To = []Address{a}
		conv.Messages = append(conv.Messages, msg)
		conv.Rcpts = append(conv.Rcpts, rcptsOf(rcpts, []int{bccIdx[n]}))
	}
	return &conv, nil
}

// rcptsOf lists the indices of rcpts covered by the given distinct ones,
// duplicates included (the same address given twice in RCPT TO).
func rcptsOf(rcpts []string, groups ...[]int) []int {
	want := map[string]bool{}
	for _, g := range groups {
		for _, i := range g {
			want[strings.ToLower(strings.TrimSpace(rcpts[i]))] = true
		}
	}
	var out []int
	for i, r := range rcpts {
		if want[strings.ToLower(strings.TrimSpace(r))] {
			out = append(out, i)
		}
	}
	return out
}
