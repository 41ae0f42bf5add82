package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/relay/authlimit"
)

// basicAuth checks HTTP basic credentials against bcrypt hashes. As in the
// SMTP server, a password that verified once is remembered as an HMAC under
// a per-process random key, so that a browser (which sends the credentials
// with every request) pays bcrypt's ~60 ms once per password and process.
// At most two bcrypt comparisons run at once, so that a flood of wrong
// passwords cannot take every core, and every other check takes its turn in
// its client's guess limit (newGuessLimit): over the limit the answer is
// 429 without bcrypt running, and a guess that already failed from the
// client is refused again without bcrypt and without counting twice.
type basicAuth struct {
	realm   string // "ui" or "webhook", for the log
	hashes  map[string][]byte
	key     [32]byte
	sem     chan struct{}
	limit   *authlimit.Limiter
	fails   *failureLog
	compare func(hash, password []byte) error // bcrypt.CompareHashAndPassword

	dummyOnce sync.Once
	dummy     []byte // makes an unknown user cost the same as a wrong password

	mu       sync.Mutex
	verified map[string][32]byte
}

func newBasicAuth(realm string, users map[string]string, limit *authlimit.Limiter, fails *failureLog) *basicAuth {
	a := &basicAuth{realm: realm, hashes: map[string][]byte{}, verified: map[string][32]byte{},
		sem: make(chan struct{}, 2), limit: limit, fails: fails, compare: bcrypt.CompareHashAndPassword}
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
	// The limiter keeps the digest of a failed guess (never the password)
	// and counts failures per realm and user, so that a login clears only
	// its own.
	client, login := clientKey(r.RemoteAddr), a.realm+"\x00"+name
	turn, err := a.limit.Try(client, string(sum[:]))
	var th *authlimit.Throttled
	if errors.As(err, &th) { // Try's only error
		a.fails.failed(a.realm, client, true)
		return "", authThrottled, th.RetryAfter
	}
	if turn.Repeat {
		a.fails.failed(a.realm, client, false)
		return "", authFailed, 0
	}
	if !known {
		a.dummyOnce.Do(func() { a.dummy, _ = bcrypt.GenerateFromPassword(a.key[:16], bcrypt.DefaultCost) })
		hash = a.dummy
	}
	select {
	case a.sem <- struct{}{}:
	case <-r.Context().Done():
		turn.Abandon()
		return "", authFailed, 0
	}
	err = a.compare(hash, []byte(password))
	<-a.sem
	if err != nil || !known {
		turn.Failed(login)
		a.fails.failed(a.realm, client, false)
		return "", authFailed, 0
	}
	turn.Succeeded(login)
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
