package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mjrelay/mjrelay/relay/queue"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// replay rebuilds the index from the segment files, oldest first.
func (s *Spool) replay() error {
	names, err := filepath.Glob(filepath.Join(s.dir, "seg-*.log"))
	if err != nil {
		return err
	}
	var seqs []uint64
	for _, n := range names {
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), "seg-"), ".log"), 10, 64)
		if err == nil {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	var damaged []*segment
	for i, seq := range seqs {
		sg, bad, err := s.replaySegment(seq, i == len(seqs)-1)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, sg)
		s.diskLen += sg.size
		if bad {
			damaged = append(damaged, sg)
		}
	}
	if len(damaged) == 0 {
		return nil
	}
	// Copy what was readable out of the damaged segments into a fresh one,
	// then drop them. This needs the committer, which is not running yet:
	// write synchronously through s.write.
	if _, err := s.rotate(s.completionRoom(0)); err != nil {
		return err
	}
	for _, sg := range damaged {
		if err := s.evacuateSync(sg); err != nil {
			return err
		}
	}
	return nil
}

// replaySegment applies one segment's records to the index. bad reports
// unreadable data that was quarantined (the segment must be evacuated).
func (s *Spool) replaySegment(seq uint64, newest bool) (sg *segment, bad bool, err error) {
	p := segPath(s.dir, seq)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, false, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, err
	}
	sg = &segment{seq: seq, path: p, f: f, size: fi.Size()}
	off := int64(0)
	for {
		rec, err := s.rec.read(f, off, sg.size, false)
		if err == io.EOF {
			break
		}
		if errors.Is(err, errCorrupt) {
			next := s.resync(f, off+1, sg.size)
			s.quarantine(sg, off, next)
			if next < 0 {
				if newest {
					// An unfinished final write: it was never acknowledged.
					if err := f.Truncate(off); err != nil {
						return nil, false, err
					}
					sg.size = off
					break
				}
				bad = true
				break
			}
			bad = true
			off = next
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if rec.hdr == headerLen {
			s.tagged++
		}
		s.applyReplayed(sg, rec, off)
		off += rec.len()
	}
	sg.allocEnd = sg.size
	return sg, bad, nil
}

func (s *Spool) applyReplayed(sg *segment, rec record, off int64) {
	payload := rec.payload
	switch rec.typ {
	case recMessage:
		ej, bodyOff, err := splitMessage(payload)
		var env queue.Envelope
		if err == nil {
			err = json.Unmarshal(ej, &env)
		}
		if err != nil || env.ID == "" {
			s.log.Error("spool: unreadable envelope skipped", "segment", sg.path, "offset", off)
			return
		}
		e := s.index[env.ID]
		if e == nil {
			e = &entry{state: queue.State{ID: env.ID}}
			s.index[env.ID] = e
		} else {
			s.addLive(e.seg, -e.n)
		}
		e.env, e.seg = env, sg
		e.off, e.n = off+rec.hdr+int64(bodyOff), int64(len(payload)-bodyOff)
		s.addLive(sg, e.n)
	case recState:
		var st queue.State
		if json.Unmarshal(payload, &st) != nil {
			return
		}
		if e := s.index[st.ID]; e != nil {
			e.state, e.stateSeg = st, sg
		}
	case recDone:
		id := string(payload)
		if e := s.index[id]; e != nil {
			s.addLive(e.seg, -e.n)
			if e.seg != sg {
				sg.doneRefs = append(sg.doneRefs, id)
			}
			delete(s.index, id)
		}
	}
}

// resync finds the next offset at or after from where a record with a valid
// tag starts, or -1. The tag is what keeps a record-like sequence inside a
// message body (which a client wrote) from being taken for a record.
func (s *Spool) resync(f *os.File, from, size int64) int64 {
	buf := make([]byte, 64<<10)
	for pos := from; pos < size; {
		n, err := f.ReadAt(buf, pos)
		if n == 0 {
			return -1
		}
		for i := 0; i+len(magic) <= n; i++ {
			if [4]byte(buf[i:i+4]) != magic {
				continue
			}
			if _, err := s.rec.read(f, pos+int64(i), size, true); err == nil {
				return pos + int64(i)
			}
		}
		if err != nil {
			return -1
		}
		pos += int64(n - len(magic) + 1)
	}
	return -1
}

// quarantine copies a damaged segment to quarantine/ and reports the
// unreadable range [from, to) (to < 0: to the end).
func (s *Spool) quarantine(sg *segment, from, to int64) {
	if to < 0 {
		to = sg.size
	}
	qdir := filepath.Join(s.dir, "quarantine")
	dst := filepath.Join(qdir, fmt.Sprintf("%s.%s", filepath.Base(sg.path), time.Now().UTC().Format("20060102T150405.000000000")))
	err := os.MkdirAll(qdir, 0o700)
	if err == nil {
		err = copyFile(dst, sg.f, sg.size)
	}
	s.log.Error("spool: damaged queue data quarantined; the readable messages are kept",
		"segment", sg.path, "bad_from", from, "bad_to", to, "bad_bytes", to-from, "copy", dst, "copy_err", err)
}

func copyFile(dst string, src *os.File, size int64) error {
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(src, 0, size)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
