package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// basicAuth checks HTTP basic credentials against bcrypt hashes. As in the
// SMTP server, a password that verified once is remembered as an HMAC under
// a per-process random key, so that a browser (which sends the credentials
// with every request) pays bcrypt's ~60 ms once per password and process.
// At most two bcrypt comparisons run at once, so that a flood of wrong
// passwords cannot take every core.
type basicAuth struct {
	hashes map[string][]byte
	key    [32]byte
	sem    chan struct{}

	dummyOnce sync.Once
	dummy     []byte // makes an unknown user cost the same as a wrong password

	mu       sync.Mutex
	verified map[string][32]byte
}

func newBasicAuth(users map[string]string) *basicAuth {
	a := &basicAuth{hashes: map[string][]byte{}, verified: map[string][32]byte{}, sem: make(chan struct{}, 2)}
	rand.Read(a.key[:])
	for name, hash := range users {
		a.hashes[name] = []byte(hash)
	}
	return a
}

// check returns the user name when the request carries valid credentials.
func (a *basicAuth) check(r *http.Request) (string, bool) {
	name, password, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	mac := hmac.New(sha256.New, a.key[:])
	mac.Write([]byte(name))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var sum [32]byte
	copy(sum[:], mac.Sum(nil))

	hash, known := a.hashes[name]
	a.mu.Lock()
	prev, seen := a.verified[name]
	a.mu.Unlock()
	if known && seen && hmac.Equal(prev[:], sum[:]) {
		return name, true
	}
	if !known {
		a.dummyOnce.Do(func() { a.dummy, _ = bcrypt.GenerateFromPassword(a.key[:16], bcrypt.DefaultCost) })
		hash = a.dummy
	}
	select {
	case a.sem <- struct{}{}:
	case <-r.Context().Done():
		return "", false
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	<-a.sem
	if err != nil || !known {
		return "", false
	}
	a.mu.Lock()
	a.verified[name] = sum
	a.mu.Unlock()
	return name, true
}
