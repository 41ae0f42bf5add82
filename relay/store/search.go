package store

import (
	"regexp"
	"strings"
)

// What Filter.Q finds, in every backend: a queue id, a Mailjet message id
// or UUID finds that message; a domain finds the messages from or to it;
// anything else is words that must all match the subject, the addresses
// or the ids (queue id, Message-Id, login), each as a prefix of a word
// when it has three characters or more. '.', '@', '-', '_' and '+' are
// part of words, so that an address is one word (searching "john" finds
// john.doe@example.com) and "example" does not match every address.

var (
	queueIDRe = regexp.MustCompile(`^(?:[0-9a-f]{20}|r[0-9a-f]{16})$`)
	uuidRe    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	mjIDRe    = regexp.MustCompile(`^[0-9]{6,19}$`)
	domainRe  = regexp.MustCompile(`^@?[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z][a-z0-9-]+$`)
	// upstreamIDRe is what an upstream's queue id may look like.
	upstreamIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:+=/-]{5,99}$`)
)

// Search is what Filter.Q asks for: one of QueueID, MailjetID, UUID or
// Domain, or Words; and the message an upstream gave this id ("queued
// as"), when Upstream is set.
type Search struct {
	QueueID   string // lower case
	MailjetID string
	UUID      string // lower case
	Domain    string // without "@", lower case
	Words     []Word
	Upstream  string
}

// Word is one word of a search.
type Word struct {
	Text string
	// Prefix: the word matches the words it begins (three characters or
	// more), else only itself.
	Prefix bool
}

// ParseSearch reads Filter.Q.
func ParseSearch(q string) Search {
	text := strings.TrimSpace(q)
	switch lower := strings.ToLower(text); {
	case queueIDRe.MatchString(lower):
		return Search{QueueID: lower, Upstream: text}
	case mjIDRe.MatchString(text):
		return Search{MailjetID: text, Upstream: text}
	case uuidRe.MatchString(text):
		return Search{UUID: lower, Upstream: text}
	case upstreamIDRe.MatchString(text) && strings.ContainsAny(text, "0123456789"):
		// A word with a digit: the text search, or an upstream's id.
		return Search{Words: words(text), Upstream: text}
	case domainRe.MatchString(lower):
		return Search{Domain: strings.TrimPrefix(lower, "@")}
	}
	return Search{Words: words(text)}
}

// words are the words of a search.
func words(text string) []Word {
	var out []Word
	for _, w := range strings.Fields(text) {
		if strings.Trim(w, `"*^:()+-.,;@<>'`) == "" {
			continue
		}
		out = append(out, Word{Text: w, Prefix: len([]rune(w)) >= 3})
	}
	return out
}

// Address keys index a message's addresses and their domains, lower-cased
// and prefixed by kind: "f:" from (envelope and header), "t:" to, "F:" and
// "T:" their domains; and "u:" the ids the upstream gave it.

// AddrFilter turns a From ("f:") or To ("t:") filter into an address key
// ("" = none): an address, or a domain given as "@example.com" or
// "example.com".
func AddrFilter(prefix, v string) string {
	v = strings.ToLower(strings.Trim(strings.TrimSpace(v), "<>"))
	switch {
	case v == "":
		return ""
	case strings.HasPrefix(v, "@"):
		return strings.ToUpper(prefix) + v[1:]
	case !strings.Contains(v, "@"):
		return strings.ToUpper(prefix) + v
	}
	return prefix + v
}

// DomainKey is the key of the domain of a search (Search.Domain) on the
// sender's ("f:") or the recipients' ("t:") side.
func DomainKey(prefix, domain string) string { return strings.ToUpper(prefix) + domain }

// AddrKeys are the address keys of the message.
func (r *Row) AddrKeys() []string {
	var out []string
	seen := map[string]bool{}
	add := func(prefix, addr string) {
		a := strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
		if a == "" {
			return
		}
		for _, k := range []string{prefix + a, domainKey(prefix, a)} {
			if k != "" && !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	add("f:", r.MailFrom)
	add("f:", r.HeaderFrom)
	for _, t := range r.To() {
		add("t:", t)
	}
	for _, id := range strings.Fields(r.UpstreamIDs) {
		if k := UpstreamKey(id); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// UpstreamKey is the address key that finds a message by an id the
// upstream gave it.
func UpstreamKey(id string) string { return "u:" + strings.ToLower(id) }

func domainKey(prefix, addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return ""
	}
	return DomainKey(prefix, addr[at+1:])
}

// SearchText is what the words of a search are matched against: the
// subject, the addresses, the ids.
func (r *Row) SearchText() (subject, addrs, ids string) {
	a := r.MailFrom + " " + r.HeaderFrom + " " + strings.ReplaceAll(r.RcptTo, "\n", " ")
	return r.Subject, a, r.ID + " " + r.MessageID + " " + r.User
}
