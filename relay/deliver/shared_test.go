package deliver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// racing is a queue shared by nodes, as relay/pgqueue is: its first Get
// of a message finds nothing to attempt (the claim loop of the same node
// is taking that message at the same moment) and returns only once the
// test lets it; later Gets find the claim.
type racing struct {
	*spool.Spool
	once    sync.Once
	inGet   chan struct{}
	proceed chan struct{}
}

func (r *racing) Get(id string) (queue.Item, error) {
	first := false
	r.once.Do(func() { first = true })
	if first {
		close(r.inGet)
		<-r.proceed
		return queue.Item{}, queue.ErrNotFound
	}
	return r.Spool.Get(id)
}

// TestEnqueuedAgainWhileInFlight: a message handed to the scheduler again
// while an attempt of it is starting (a claim loop and a timer racing) is
// looked at again when that attempt ends, not dropped: the attempt that
// found nothing does not leave the claim behind unattempted.
func TestEnqueuedAgainWhileInFlight(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	q := &racing{Spool: sp, inGet: make(chan struct{}), proceed: make(chan struct{})}
	mem := &trafficlog.Memory{}
	s := New(q, Options{Lanes: []lanes.Lane{{Class: lanes.Transactional, Targets: []mailjet.Target{&scripted{}}, Concurrency: 2, Priority: -1}},
		RetryMin: time.Hour, RetryMax: time.Hour, MaxLifetime: time.Hour, Traffic: mem})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	id := put(t, sp, time.Now(), "c@x.org")
	it, err := sp.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	s.Enqueue(it) // the timer's hand-out: its attempt finds nothing yet
	<-q.inGet
	s.Enqueue(it) // the claim loop's, while that attempt is under way
	waitUntil(t, "the second hand-out taken off the lane", func() bool { return s.Depths()["transactional"].Ready == 0 })
	close(q.proceed)
	waitUntil(t, "the message delivered", func() bool { return len(mem.Events(trafficlog.Delivered)) == 1 })
}
