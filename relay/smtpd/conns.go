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
	m  map[*slotConn]*connState
}

type connState struct {
	c        net.Conn
	progress time.Time
	busy     bool // between MAIL and the end of DATA
}

func newConns() *conns { return &conns{m: map[*slotConn]*connState{}} }

func (t *conns) add(c *slotConn) {
	t.mu.Lock()
	t.m[c] = &connState{c: c, progress: time.Now()}
	t.mu.Unlock()
}

func (t *conns) remove(c *slotConn) {
	t.mu.Lock()
	delete(t.m, c)
	t.mu.Unlock()
}

// touch records progress; busy tells whether a transaction is open.
func (t *conns) touch(c *slotConn, busy bool) {
	t.mu.Lock()
	if st := t.m[c]; st != nil {
		st.progress, st.busy = time.Now(), busy
	}
	t.mu.Unlock()
}

// idle marks a connection out of its transaction without counting
// progress (RSET is not progress).
func (t *conns) idle(c *slotConn) {
	t.mu.Lock()
	if st := t.m[c]; st != nil {
		st.busy = false
	}
	t.mu.Unlock()
}

// slotOf finds the slot connection under c (TLS, a PROXY header reader);
// nil if there is none.
func slotOf(c net.Conn) *slotConn {
	for {
		switch x := c.(type) {
		case *slotConn:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
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
