package pgstore

import (
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/mjrelay/mjrelay/relay/store"
)

// The full-text search finds what the embedded store's FTS5 index finds
// (see store.ParseSearch): the words are cut here as FTS5's unicode61
// tokenizer with tokenchars '.@-_+' and remove_diacritics 2 cuts them
// (letters, digits and private-use characters, plus those five, are part
// of a word; case and Latin diacritics are folded), and handed to
// PostgreSQL as lexemes it does not parse again: a tsvector of the
// subject, the addresses and the ids, and a tsquery in which every word of
// the search must match, as a prefix when it says so, its pieces in order
// (FTS5's phrase: "INV/2026/0042" is inv, 2026, 0042).

// maxLexeme is below PostgreSQL's limit on a lexeme (2047 bytes).
const maxLexeme = 2000

// maxPositions bounds the words indexed per message; PostgreSQL keeps
// positions up to 16383.
const maxPositions = 4000

// words cuts s into lower-cased words without diacritics.
func words(s string) []string {
	var out []string
	var b strings.Builder
	end := func() {
		if b.Len() > 0 {
			if b.Len() <= maxLexeme {
				out = append(out, b.String())
			}
			b.Reset()
		}
	}
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			if 'A' <= r && r <= 'Z' {
				b.WriteByte(byte(r) + 'a' - 'A')
			} else if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || strings.ContainsRune(".@-_+", r) {
				b.WriteByte(byte(r))
			} else {
				end()
			}
		case unicode.Is(unicode.Mn, r):
			// a combining mark: a diacritic, dropped
		case unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Co, r):
			foldInto(&b, r)
		default:
			end()
		}
	}
	end()
	return out
}

// foldInto writes r lower-cased, without its diacritics when it is Latin.
func foldInto(b *strings.Builder, r rune) {
	r = unicode.ToLower(r)
	if !unicode.Is(unicode.Latin, r) {
		b.WriteRune(r)
		return
	}
	for _, d := range norm.NFD.String(string(r)) {
		if !unicode.Is(unicode.Mn, d) {
			b.WriteRune(d)
		}
	}
}

// tsvector is the words of a message as a tsvector literal; the parts
// (subject, addresses, ids) are a position apart, so that a phrase does
// not run from one into the next.
func tsvector(parts ...string) string {
	pos := map[string][]int{}
	p := 0
	for _, part := range parts {
		for _, w := range words(part) {
			p++
			if p > maxPositions {
				break
			}
			pos[w] = append(pos[w], p)
		}
		p++
	}
	lex := make([]string, 0, len(pos))
	for w := range pos {
		lex = append(lex, w)
	}
	sort.Strings(lex)
	var b strings.Builder
	for i, w := range lex {
		if i > 0 {
			b.WriteByte(' ')
		}
		quote(&b, w)
		for j, n := range pos[w] {
			if j == 0 {
				b.WriteByte(':')
			} else {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(n))
		}
	}
	return b.String()
}

// tsquery is a search's words as a tsquery literal ("" for no words);
// none reports a word without a letter or a digit, which (as in FTS5)
// nothing matches.
func tsquery(ws []store.Word) (q string, none bool) {
	var terms []string
	for _, w := range ws {
		pieces := words(w.Text)
		if len(pieces) == 0 {
			return "", true
		}
		var b strings.Builder
		if len(pieces) > 1 {
			b.WriteByte('(')
		}
		for i, p := range pieces {
			if i > 0 {
				b.WriteString(" <-> ")
			}
			quote(&b, p)
			if w.Prefix && i == len(pieces)-1 {
				b.WriteString(":*")
			}
		}
		if len(pieces) > 1 {
			b.WriteByte(')')
		}
		terms = append(terms, b.String())
	}
	return strings.Join(terms, " & "), false
}

// quote writes a lexeme in quotes, its quotes and backslashes doubled.
func quote(b *strings.Builder, w string) {
	b.WriteByte('\'')
	for i := 0; i < len(w); i++ {
		if w[i] == '\'' || w[i] == '\\' {
			b.WriteByte(w[i])
		}
		b.WriteByte(w[i])
	}
	b.WriteByte('\'')
}
