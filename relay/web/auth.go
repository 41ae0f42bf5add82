package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// basicAuth checks HTTP basic credentials against bcrypt hashes. As in the
// SMTP server, a password that verified once is remembered as an HMAC under
// a per-process random key, so that a browser (which sends the credentials
// with every request) pays bcrypt's ~60 ms once per password and process.
// At most two bcrypt comparisons run at once, so that a flood of wrong
// passwords cannot take every core, and every other check counts against
// its client's guesses (guessLimit): over the limit the answer is 429
// without bcrypt running.
type basicAuth struct {
	realm   string // "ui" or "webhook", for the log
	hashes  map[string][]byte
	key     [32]byte
	sem     chan struct{}
	guesses *guessLimit
	compare func(hash, password []byte) error // bcrypt.CompareHashAndPassword

	dummyOnce sync.Once
	dummy     []byte // makes an unknown user cost the same as a wrong password

	mu       sync.Mutex
	verified map[string][32]byte
}

func newBasicAuth(realm string, users map[string]string, guesses *guessLimit) *basicAuth {
	a := &basicAuth{realm: realm, hashes: map[string][]byte{}, verified: map[string][32]byte{},
		sem: make(chan struct{}, 2), guesses: guesses, compare: bcrypt.CompareHashAndPassword}
	rand.Read(a.key[:])
	for name, hash := range users {
		a.hashes[name] = []byte(hash)
	}
	return a
}

// authResult is the outcome of a check.
type authResult int

const (
	authMissing   authResult = iota // no credentials sent
	authOK                          // verified
	authFailed                      // wrong user name or password
	authThrottled                   // too many failures from the client: not checked
)

// check verifies the request's credentials. It returns the user name when
// they are valid and, when throttled, how long the client should wait.
func (a *basicAuth) check(r *http.Request) (string, authResult, time.Duration) {
	name, password, ok := r.BasicAuth()
	if !ok {
		return "", authMissing, 0
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
		return name, authOK, 0
	}
	client, login := clientKey(r.RemoteAddr), a.realm+"\x00"+name
	slot, retry, ok := a.guesses.reserve(client, login)
	if !ok {
		a.guesses.failed(a.realm, client, true)
		return "", authThrottled, retry
	}
	if !known {
		a.dummyOnce.Do(func() { a.dummy, _ = bcrypt.GenerateFromPassword(a.key[:16], bcrypt.DefaultCost) })
		hash = a.dummy
	}
	select {
	case a.sem <- struct{}{}:
	case <-r.Context().Done():
		a.guesses.release(client, slot)
		return "", authFailed, 0
	}
	err := a.compare(hash, []byte(password))
	<-a.sem
	if err != nil || !known {
		a.guesses.failed(a.realm, client, false)
		return "", authFailed, 0
	}
	a.guesses.verified(client, login)
	a.mu.Lock()
	a.verified[name] = sum
	a.mu.Unlock()
	return name, authOK, 0
}

// deny answers a request whose check did not pass: 401 with a challenge,
// or 429 with Retry-After when the client is throttled.
func deny(w http.ResponseWriter, res authResult, retry time.Duration, challenge string) {
	if res == authThrottled {
		secs := max(int(math.Ceil(retry.Seconds())), 1)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		http.Error(w, fmt.Sprintf("Too many failed logins from your address: try again in %d s", secs), http.StatusTooManyRequests)
		return
	}
	w.Header().Set("WWW-Authenticate", challenge)
	http.Error(w, "Unauthorized", http.StatusUnauthorized)
}
