package spool

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"sync"
)

// A segment file is a sequence of records:
//
//	magic "MJR2" | type (1) | payload length (4, big endian) |
//	CRC-32C of type+length+payload (4) | tag (16) | payload
//
// The tag is an HMAC-SHA256 of the first 13 header bytes (magic to CRC)
// under the spool's key (the file KEY next to the segments, never inside
// them), truncated to 16 bytes. A client controls the bytes of its
// message, so it can place something that looks like a record inside a
// body; it cannot compute a tag. Records are read one after the other, each
// starting where the previous one's length says; only after damage does
// replay look for the next record by scanning, and then only a record with
// a valid tag is taken (see resync).
//
// Record types: recMessage (u32 envelope length | envelope JSON | message
// bytes), recState (state JSON), recDone (queue id).
//
// Segments written before the tag existed hold "MJR1" records (13-byte
// header, CRC of type+payload); they are still read in sequence, never
// found by a scan.
const (
	recMessage byte = 'M'
	recState   byte = 'S'
	recDone    byte = 'D'

	headerLen   = 29
	headerLenV1 = 13
	tagLen      = 16
	maxPayload  = 1 << 30
)

var (
	magic      = [4]byte{'M', 'J', 'R', '2'}
	magicV1    = [4]byte{'M', 'J', 'R', '1'}
	crcTable   = crc32.MakeTable(crc32.Castagnoli)
	errCorrupt = errors.New("corrupt record")
)

// sealer frames records and checks their tags with the spool's key.
type sealer struct {
	key   []byte // nil: tags cannot be checked (resync finds nothing)
	hmacs sync.Pool
}

func newSealer(key []byte) *sealer {
	s := &sealer{key: key}
	s.hmacs.New = func() any { return hmac.New(sha256.New, s.key) }
	return s
}

// tag computes the tag of a header's first 13 bytes into dst.
func (s *sealer) tag(dst, h []byte) {
	m := s.hmacs.Get().(hash.Hash)
	m.Reset()
	m.Write(h[:13])
	var sum [sha256.Size]byte
	copy(dst, m.Sum(sum[:0]))
	s.hmacs.Put(m)
}

// header frames payload parts as one record: it returns the record's
// header; the record is the header followed by the parts.
func (s *sealer) header(typ byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h := make([]byte, headerLen)
	copy(h[:4], magic[:])
	h[4] = typ
	binary.BigEndian.PutUint32(h[5:9], uint32(n))
	crc := crc32.Update(0, crcTable, h[4:9])
	for _, p := range parts {
		crc = crc32.Update(crc, crcTable, p)
	}
	binary.BigEndian.PutUint32(h[9:13], crc)
	s.tag(h[13:], h)
	return h
}

// appendRecord frames payload parts as one record and appends it to dst.
func (s *sealer) appendRecord(dst []byte, typ byte, parts ...[]byte) []byte {
	dst = append(dst, s.header(typ, parts...)...)
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

// messagePayload builds the payload parts of a recMessage record.
func messagePayload(env []byte, body ...[]byte) [][]byte {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(env)))
	return append([][]byte{l[:], env}, body...)
}

// splitMessage splits a recMessage payload into envelope and the body's
// offset within the payload.
func splitMessage(p []byte) (env []byte, bodyOff int, err error) {
	if len(p) < 4 {
		return nil, 0, errCorrupt
	}
	n := int(binary.BigEndian.Uint32(p))
	if 4+n > len(p) {
		return nil, 0, errCorrupt
	}
	return p[4 : 4+n], 4 + n, nil
}

// record is one record read back.
type record struct {
	typ     byte
	payload []byte
	hdr     int64 // header length: the payload starts at off+hdr
}

// len is the record's length on disk.
func (r record) len() int64 { return r.hdr + int64(len(r.payload)) }

// read reads the record at off. With tagged, only a current record whose
// tag checks out is taken (for resync, which must never take a record
// from inside a message body); otherwise a record is taken on its CRC
// alone, since its position follows from the records before it. It
// returns errCorrupt for a record that does not check out and io.EOF
// exactly at the end of the data.
func (s *sealer) read(r io.ReaderAt, off, size int64, tagged bool) (record, error) {
	if off == size {
		return record{}, io.EOF
	}
	if size-off < headerLenV1 {
		return record{}, errCorrupt
	}
	var h [headerLen]byte
	hl := int64(headerLen)
	if size-off < hl {
		hl = size - off
	}
	if _, err := r.ReadAt(h[:hl], off); err != nil {
		return record{}, err
	}
	var rec record
	switch [4]byte(h[:4]) {
	case magic:
		if hl < headerLen {
			return record{}, errCorrupt
		}
		rec.hdr = headerLen
		if tagged {
			var want [tagLen]byte
			if s.key == nil {
				return record{}, errCorrupt
			}
			s.tag(want[:], h[:])
			if !hmac.Equal(want[:], h[13:headerLen]) {
				return record{}, errCorrupt
			}
		}
	case magicV1:
		if tagged {
			return record{}, errCorrupt
		}
		rec.hdr = headerLenV1
	default:
		return record{}, errCorrupt
	}
	n := int64(binary.BigEndian.Uint32(h[5:9]))
	if n > maxPayload || off+rec.hdr+n > size {
		return record{}, errCorrupt
	}
	rec.typ, rec.payload = h[4], make([]byte, n)
	if _, err := r.ReadAt(rec.payload, off+rec.hdr); err != nil {
		return record{}, err
	}
	crc := crc32.Update(0, crcTable, h[4:5])
	if rec.hdr == headerLen {
		crc = crc32.Update(crc, crcTable, h[5:9])
	}
	if crc32.Update(crc, crcTable, rec.payload) != binary.BigEndian.Uint32(h[9:13]) {
		return record{}, errCorrupt
	}
	switch rec.typ {
	case recMessage, recState, recDone:
	default:
		return record{}, errCorrupt
	}
	return rec, nil
}
