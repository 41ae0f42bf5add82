package spool

import (
	"context"
	"encoding/json"
	"github.com/mjrelay/mjrelay/relay/queue"
	"os"
	"time"
)

// maintain reclaims segments in the background.
func (s *Spool) maintain() {
	defer s.wg.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			s.reclaim()
		}
	}
}

// pinLimit is how many newer segments the oldest one may hold on disk
// before its remaining messages are copied forward, which happens only when
// they are less than a quarter of its bytes: a queue that is all live (the
// upstream down) is never rewritten.
const pinLimit = 3

// recycleMin is the size from which a single segment holding nothing
// queued is emptied in place (see recycle).
const recycleMin = 256 << 10

// reclaim deletes fully delivered segments, oldest first: a done record may
// refer to a message in an older segment, so a segment can only go once all
// older ones have. A long-lived message in the oldest segment is copied to
// the active one so that it does not pin the rest.
func (s *Spool) reclaim() {
	for {
		s.mu.Lock()
		if len(s.segs) < 2 {
			dead := len(s.segs) == 1 && s.segs[0].live == 0 && s.segs[0].size >= recycleMin
			s.mu.Unlock()
			if dead {
				s.submitOp(context.Background(), &op{recycle: true, done: make(chan error, 1)})
			}
			return
		}
		old := s.segs[0]
		free := old.live == 0 && old.readers == 0
		pinned := old.live > 0 && len(s.segs) > pinLimit && old.liveLen*4 < old.size
		s.mu.Unlock()
		switch {
		case free:
			s.dropSegment(old)
		case pinned:
			if err := s.evacuate(context.Background(), old); err != nil {
				s.log.Error("spool: cannot copy messages forward", "segment", old.path, "err", err)
				return
			}
		default:
			return
		}
	}
}

// dropSegment deletes a segment that holds no live message.
func (s *Spool) dropSegment(sg *segment) {
	s.mu.Lock()
	if sg.live != 0 || sg.readers != 0 || len(s.segs) == 0 || s.segs[len(s.segs)-1] == sg {
		s.mu.Unlock()
		return
	}
	for i, x := range s.segs {
		if x == sg {
			s.segs = append(s.segs[:i:i], s.segs[i+1:]...)
			break
		}
	}
	s.diskLen -= sg.size
	s.mu.Unlock()
	sg.f.Close()
	if err := os.Remove(sg.path); err != nil {
		s.log.Error("spool: cannot remove segment", "segment", sg.path, "err", err)
	}
	syncDir(s.dir)
}

// evacuation is the set of records that re-state, in the active segment,
// everything a segment holds that is still needed.
type evacuation struct {
	data  []byte
	apply func(dst *segment, base int64)
}

// planEvacuation reads what sg holds that is still needed: its live
// messages with their states, the latest states it holds for messages
// elsewhere, and the completions it records for older segments' messages.
func (s *Spool) planEvacuation(sg *segment) ([]evacuation, error) {
	type move struct {
		e    *entry
		body []byte
	}
	s.mu.Lock()
	var moves []move
	var states []queue.State
	for _, e := range s.index {
		if e.seg == sg {
			moves = append(moves, move{e: e})
		} else if e.stateSeg == sg {
			states = append(states, e.state)
		}
	}
	refs := sg.doneRefs
	s.mu.Unlock()
	var out []evacuation
	for _, m := range moves {
		b := make([]byte, m.e.n)
		if _, err := sg.f.ReadAt(b, m.e.off); err != nil {
			return nil, err
		}
		ej, err := json.Marshal(m.e.env)
		if err != nil {
			return nil, err
		}
		sj, _ := json.Marshal(m.e.state)
		data := s.rec.appendRecord(nil, recMessage, messagePayload(ej, b)...)
		bodyOff := int64(headerLen + 4 + len(ej))
		data = s.rec.appendRecord(data, recState, sj)
		e, id := m.e, m.e.env.ID
		out = append(out, evacuation{data: data, apply: func(dst *segment, base int64) {
			if s.index[id] != e || e.seg != sg {
				// Completed while being copied: complete the copy too.
				out := s.rec.appendRecord(nil, recDone, []byte(id))
				go s.submit(context.Background(), out, func(*segment, int64) {})
				return
			}
			s.addLive(sg, -e.n)
			s.addLive(dst, e.n)
			e.seg, e.off, e.stateSeg = dst, base+bodyOff, dst
		}})
	}
	for _, st := range states {
		j, _ := json.Marshal(st)
		id := st.ID
		out = append(out, evacuation{data: s.rec.appendRecord(nil, recState, j), apply: func(dst *segment, _ int64) {
			if e := s.index[id]; e != nil && e.stateSeg == sg {
				e.stateSeg = dst
			}
		}})
	}
	for _, id := range refs {
		out = append(out, evacuation{data: s.rec.appendRecord(nil, recDone, []byte(id)), apply: func(*segment, int64) {}})
	}
	return out, nil
}

// evacuate copies sg's needed records forward through the committer, then
// deletes sg.
func (s *Spool) evacuate(ctx context.Context, sg *segment) error {
	plan, err := s.planEvacuation(sg)
	if err != nil {
		return err
	}
	for _, ev := range plan {
		if err := s.submit(ctx, ev.data, ev.apply); err != nil {
			return err
		}
	}
	s.forceDrop(sg)
	return nil
}

// evacuateSync is evacuate for Open, before the committer runs.
func (s *Spool) evacuateSync(sg *segment) error {
	plan, err := s.planEvacuation(sg)
	if err != nil {
		return err
	}
	for _, ev := range plan {
		dst, base, err := s.write([][]byte{ev.data}, len(ev.data), true, false, 0)
		if err != nil {
			return err
		}
		s.mu.Lock()
		ev.apply(dst, base)
		s.mu.Unlock()
	}
	s.forceDrop(sg)
	return nil
}

// forceDrop deletes an evacuated segment even if it is not the oldest:
// everything in it that is still needed was re-written.
func (s *Spool) forceDrop(sg *segment) {
	s.mu.Lock()
	sg.live, sg.liveLen = 0, 0
	sg.doneRefs = nil
	s.mu.Unlock()
	s.dropSegment(sg)
}
