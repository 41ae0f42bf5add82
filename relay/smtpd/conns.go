package smtpd

import (
	"net"
	"sync"
	"time"
)

// conns tracks open connections so that, when every slot is taken, the one
// that has made no progress for longest (and is not in the middle of a
// transaction) can be closed to make room. Progress is a completed AUTH,
// MAIL, RCPT or message, so idle connections and slowloris clients that
// dribble bytes without finishing commands go first; clients that work
// keep their connection.
type conns struct {
	mu sync.Mutex
	m  map[string]*connState // by remote address
}

type connState struct {
	c        net.Conn
	progress time.Time
	busy     bool // between MAIL and the end of DATA
}

func newConns() *conns { return &conns{m: map[string]*connState{}} }

func (t *conns) add(c net.Conn) {
	t.mu.Lock()
	t.m[c.RemoteAddr().String()] = &connState{c: c, progress: time.Now()}
	t.mu.Unlock()
}

func (t *conns) remove(c net.Conn) {
	t.mu.Lock()
	delete(t.m, c.RemoteAddr().String())
	t.mu.Unlock()
}

// touch records progress; busy tells whether a transaction is open.
func (t *conns) touch(remote string, busy bool) {
	t.mu.Lock()
	if st := t.m[remote]; st != nil {
		st.progress, st.busy = time.Now(), busy
	}
	t.mu.Unlock()
}

// idle marks a connection out of its transaction without counting
// progress (RSET is not progress).
func (t *conns) idle(remote string) {
	t.mu.Lock()
	if st := t.m[remote]; st != nil {
		st.busy = false
	}
	t.mu.Unlock()
}

// evict closes the connection idle longest, if any is not busy.
func (t *conns) evict() bool {
	t.mu.Lock()
	var victim *connState
	for _, st := range t.m {
		if !st.busy && (victim == nil || st.progress.Before(victim.progress)) {
			victim = st
		}
	}
	t.mu.Unlock()
	if victim == nil {
		return false
	}
	victim.c.Close()
	return true
}
