package smtpd

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/relay/authlimit"
	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// users checks SMTP logins against bcrypt hashes. A password that verified
// once is remembered as an HMAC under a per-process random key, so that
// Odoo, which logs in again for every batch, pays bcrypt's ~60 ms of CPU only
// once per password and process; nothing of it is ever written anywhere.
type users struct {
	byName map[string]User
	key    [32]byte
	// dummy makes an unknown user cost the same as a wrong password.
	dummy []byte

	mu       sync.Mutex
	verified map[string][32]byte
}

func newUsers(list []User) *users {
	u := &users{byName: map[string]User{}, verified: map[string][32]byte{}}
	rand.Read(u.key[:])
	u.dummy, _ = bcrypt.GenerateFromPassword(u.key[:16], bcrypt.DefaultCost)
	for _, x := range list {
		u.byName[x.Username] = x
	}
	return u
}

// digest is a keyed hash of a login attempt: what may be kept of it in
// memory (never the password itself).
func (u *users) digest(parts ...string) [32]byte {
	mac := hmac.New(sha256.New, u.key[:])
	for _, p := range parts {
		mac.Write([]byte(p))
		mac.Write([]byte{0})
	}
	var sum [32]byte
	copy(sum[:], mac.Sum(nil))
	return sum
}

func (u *users) check(name, password string) (User, bool) {
	sum := u.digest(name, password)

	user, known := u.byName[name]
	u.mu.Lock()
	prev, seen := u.verified[name]
	u.mu.Unlock()
	if known && seen && hmac.Equal(prev[:], sum[:]) {
		return user, true
	}
	hash := u.dummy
	if known {
		hash = []byte(user.PasswordHash)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !known {
		return User{}, false
	}
	u.mu.Lock()
	u.verified[name] = sum
	u.mu.Unlock()
	return user, true
}

// loginServer is the server side of AUTH LOGIN (go-sasl no longer has one).
// It accepts an initial response (Python's smtplib sends the user name with
// the command) and the classic two-prompt exchange (swaks).
type loginServer struct {
	step int
	user string
	auth func(user, pass string) error
}

func (s *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		s.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		s.user, s.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.auth(s.user, string(resp))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

func (s *session) AuthMechanisms() []string {
	if !s.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) authAllowed() bool {
	return authAllowed(s.tls(), s.ip, s.srv.settings().AllowInsecureAuth)
}

// authAllowed: AUTH over TLS, from loopback, or anywhere with allow_insecure_auth.
func authAllowed(tls bool, ip netip.Addr, insecureOK bool) bool {
	return tls || ip.IsLoopback() || insecureOK
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.authAllowed() {
		return nil, s.refuse("auth", 530, smtp.EnhancedCode{5, 7, 0}, "auth_without_tls",
			"Must issue a STARTTLS command first (in Odoo: Connection Encryption = TLS (STARTTLS))")
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return recordedSASL{sasl.NewPlainServer(s.checkLogin), s}, nil
	case sasl.Login:
		return recordedSASL{&loginServer{auth: func(u, p string) error { return s.checkLogin("", u, p) }}, s}, nil
	}
	return nil, s.refuse("auth", 504, smtp.EnhancedCode{5, 5, 4}, "unknown_mechanism",
		"Unsupported authentication mechanism; use PLAIN or LOGIN")
}

// checkLogin checks one AUTH attempt, in the client address's turn (see
// authlimit): a guess that already failed from the address is refused
// again without being checked or counted, so smtplib's LOGIN after a
// failed PLAIN with the same password is one failure, not two.
func (s *session) checkLogin(identity, username, password string) error {
	users := s.srv.users.Load()
	d := users.digest(identity, username, password)
	turn, err := s.srv.guesses.Wait(context.Background(), s.ip.String(), hex.EncodeToString(d[:]))
	var th *authlimit.Throttled
	if errors.As(err, &th) {
		s.srv.warn("auth throttled", "SMTP logins refused for now: too many failed logins from the address", "client", s.client, "user", clip(username, 100))
		return s.refuse("auth", 454, smtp.EnhancedCode{4, 7, 0}, "auth_throttled",
			fmt.Sprintf("Too many failed logins from your address: try again in %d s", max(int(th.RetryAfter.Seconds()+0.5), 1)))
	}
	if err != nil {
		return err
	}
	if turn.Repeat {
		return s.authFailed(username, false)
	}
	if identity == "" || identity == username {
		if u, ok := users.check(username, password); ok {
			turn.Succeeded(clip(username, 100))
			s.user = &u
			s.srv.open.touch(s.slot, false)
			return nil
		}
	}
	turn.Failed(clip(username, 100))
	return s.authFailed(username, true)
}

const maxAuthFailsPerConn = 3

// authFailed records and returns the 535 for username; counted is false for
// a guess already refused.
func (s *session) authFailed(username string, counted bool) error {
	reason, msg := authFailedText(username)
	c := s.connection()
	c.User = clip(username, 100)
	err := s.record(trafficlog.NewRefused(c, trafficlog.Refusal{Stage: "auth", Reason: reason}), &intake.Refusal{Code: 535, Enhanced: [3]int{5, 7, 8}, Text: msg})
	if !counted {
		return err
	}
	s.fails++
	if n := s.srv.guesses.Failures(s.ip.String()); n >= 5 {
		s.srv.warn("auth failures", "repeated SMTP authentication failures", "client", s.client, "failures", n, "user", clip(username, 100))
	}
	if s.fails >= maxAuthFailsPerConn {
		// go-smtp writes the 535 first; its next read then sees EOF and the
		// session ends.
		closeRead(s.conn.Conn())
	}
	return err
}

// authFailedText is the reason and text of a 535: the text is what Odoo
// shows ("Server replied with following exception"), so it says what to
// do. The commonest mistake is to give Odoo the Mailjet API keys.
func authFailedText(username string) (reason, msg string) {
	if looksLikeAPIKey(username) {
		return "mailjet_key_as_login", "Authentication failed: this user name is a Mailjet API key; in Odoo use an " +
			"mjrelay login from [[smtp.users]] (mjrelay hash-password), the Mailjet keys go in mjrelay's [mailjet] section"
	}
	return "bad_credentials", "Authentication failed: use an mjrelay login from [[smtp.users]] (mjrelay hash-password), not the Mailjet API key"
}

// looksLikeAPIKey: Mailjet API keys are 32 hexadecimal digits.
func looksLikeAPIKey(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(s[i])) {
			return false
		}
	}
	return true
}

// recordedSASL makes a SASL exchange that go-sasl finds malformed (a PLAIN
// response without its two NULs, a LOGIN step too many) a refusal the relay
// records, like its others, instead of go-smtp's "454 4.7.0 sasl: ...".
type recordedSASL struct {
	sasl.Server
	s *session
}

func (r recordedSASL) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := r.Server.Next(resp)
	if _, ok := err.(*smtp.SMTPError); err != nil && !ok {
		err = r.s.refuse("auth", 501, smtp.EnhancedCode{5, 5, 2}, "bad_auth_syntax",
			"Malformed authentication exchange ("+err.Error()+")")
	}
	return ch, done, err
}
