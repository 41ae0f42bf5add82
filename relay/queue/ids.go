package queue

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"time"
)

// IDs makes queue ids: 12 hex digits of Unix milliseconds, so that ids
// sort by time, then a per-process random number plus a counter, in width
// bytes (2·width hex digits), so that processes do not collide.
type IDs struct {
	width  int
	prefix uint64
	seq    atomic.Uint64
}

// NewIDs returns an id source whose ids end in width random bytes (1-8).
func NewIDs(width int) *IDs {
	var r [8]byte
	rand.Read(r[:])
	return &IDs{width: width, prefix: binary.BigEndian.Uint64(r[:])}
}

// New returns a fresh id.
func (g *IDs) New() string {
	var b [14]byte
	ms := uint64(time.Now().UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	binary.BigEndian.PutUint64(b[6:], g.prefix+g.seq.Add(1))
	return hex.EncodeToString(append(b[:6:6], b[14-g.width:]...))
}
