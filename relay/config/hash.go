package config

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// bcryptAlphabet is the base64 alphabet bcrypt writes salt and hash in.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// checkHash returns why h is not a bcrypt hash every login could be
// checked against, or "" when it is one. A placeholder such as the
// README's "$2a$10$..." or a hash cut short by copying would otherwise
// load and make every login fail. The text never quotes the hash.
func checkHash(h Secret) string {
	const how = "must be a whole bcrypt hash from `mjrelay hash-password` (60 characters: $2a$, the cost, $, then 53 of [./A-Za-z0-9])"
	s := string(h)
	if s == "" {
		return "is empty; it " + how
	}
	if len(s) != 60 {
		return fmt.Sprintf("has %d characters; it %s", len(s), how)
	}
	switch s[:4] {
	case "$2a$", "$2b$", "$2y$":
	default:
		return "does not start with $2a$, $2b$ or $2y$; it " + how
	}
	if _, err := bcrypt.Cost([]byte(s)); err != nil || s[6] != '$' {
		return "has no valid cost (04 to 31) after " + s[:4] + "; it " + how
	}
	if i := strings.IndexFunc(s[7:], func(r rune) bool { return !strings.ContainsRune(bcryptAlphabet, r) }); i >= 0 {
		return fmt.Sprintf("has a character bcrypt never writes at position %d; it %s", 7+i+1, how)
	}
	return ""
}
