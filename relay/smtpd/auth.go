package smtpd

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/relay/config"
)

// users checks SMTP logins against bcrypt hashes. A password that verified
// once is remembered as an HMAC under a per-process random key, so that
// Odoo, which logs in again for every batch, pays bcrypt's ~60 ms of CPU only
// once per password and process; nothing of it is ever written anywhere.
type users struct {
	byName map[string]config.User
	key    [32]byte
	// dummy makes an unknown user cost the same as a wrong password.
	dummy []byte

	mu       sync.Mutex
	verified map[string][32]byte
}

func newUsers(list []config.User) *users {
	u := &users{byName: map[string]config.User{}, verified: map[string][32]byte{}}
	rand.Read(u.key[:])
	u.dummy, _ = bcrypt.GenerateFromPassword(u.key[:16], bcrypt.DefaultCost)
	for _, x := range list {
		u.byName[x.Username] = x
	}
	return u
}

func (u *users) check(name, password string) (config.User, bool) {
	mac := hmac.New(sha256.New, u.key[:])
	mac.Write([]byte(name))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var sum [32]byte
	copy(sum[:], mac.Sum(nil))

	user, known := u.byName[name]
	u.mu.Lock()
	prev, seen := u.verified[name]
	u.mu.Unlock()
	if known && seen && hmac.Equal(prev[:], sum[:]) {
		return user, true
	}
	hash := u.dummy
	if known {
		hash = []byte(user.PasswordHash.Reveal())
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !known {
		return config.User{}, false
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

// failures slows down repeated bad logins from one address: every AUTH from
// an address with recent failures waits before it is checked, doubling per
// failure up to maxDelay. Failures are forgotten after failWindow.
type failures struct {
	mu  sync.Mutex
	ips map[string]*failState
	now func() time.Time
}

type failState struct {
	n    int
	last time.Time
}

const (
	failWindow = 15 * time.Minute
	baseDelay  = 250 * time.Millisecond
	maxDelay   = 8 * time.Second
)

func newFailures() *failures {
	return &failures{ips: map[string]*failState{}, now: time.Now}
}

// delay is how long an AUTH from ip should wait now.
func (f *failures) delay(ip string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.ips[ip]
	if st == nil || f.now().Sub(st.last) > failWindow {
		return 0
	}
	d := baseDelay << min(st.n-1, 6)
	return min(d, maxDelay)
}

// fail counts a failure and returns how many ip has had recently.
func (f *failures) fail(ip string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	st := f.ips[ip]
	if st == nil || now.Sub(st.last) > failWindow {
		st = &failState{}
		f.ips[ip] = st
	}
	st.n++
	st.last = now
	if len(f.ips) > 10000 {
		for k, v := range f.ips {
			if now.Sub(v.last) > failWindow {
				delete(f.ips, k)
			}
		}
	}
	return st.n
}
