package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// A segment file is a sequence of records:
//
//	magic "MJR1" | type (1) | payload length (4, big endian) | CRC-32C of type+payload (4) | payload
//
// Record types: recMessage (u32 envelope length | envelope JSON | message
// bytes), recState (state JSON), recDone (queue id).
const (
	recMessage byte = 'M'
	recState   byte = 'S'
	recDone    byte = 'D'

	headerLen  = 13
	maxPayload = 1 << 30
)

var (
	magic      = [4]byte{'M', 'J', 'R', '1'}
	crcTable   = crc32.MakeTable(crc32.Castagnoli)
	errCorrupt = errors.New("corrupt record")
)

// header frames payload parts as one record: it returns the record's
// header; the record is the header followed by the parts.
func header(typ byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h := make([]byte, headerLen)
	copy(h[:4], magic[:])
	h[4] = typ
	binary.BigEndian.PutUint32(h[5:9], uint32(n))
	crc := crc32.Update(0, crcTable, []byte{typ})
	for _, p := range parts {
		crc = crc32.Update(crc, crcTable, p)
	}
	binary.BigEndian.PutUint32(h[9:13], crc)
	return h
}

// appendRecord frames payload parts as one record and appends it to dst.
func appendRecord(dst []byte, typ byte, parts ...[]byte) []byte {
	dst = append(dst, header(typ, parts...)...)
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

// readRecord reads the record at off. It returns errCorrupt for a record that
// does not check out and io.EOF exactly at the end of the data.
func readRecord(r io.ReaderAt, off, size int64) (typ byte, payload []byte, err error) {
	if off == size {
		return 0, nil, io.EOF
	}
	if size-off < headerLen {
		return 0, nil, errCorrupt
	}
	var h [headerLen]byte
	if _, err := r.ReadAt(h[:], off); err != nil {
		return 0, nil, err
	}
	if [4]byte(h[:4]) != magic {
		return 0, nil, errCorrupt
	}
	n := int64(binary.BigEndian.Uint32(h[5:9]))
	if n > maxPayload || off+headerLen+n > size {
		return 0, nil, errCorrupt
	}
	payload = make([]byte, n)
	if _, err := r.ReadAt(payload, off+headerLen); err != nil {
		return 0, nil, err
	}
	crc := crc32.Update(0, crcTable, h[4:5])
	if crc32.Update(crc, crcTable, payload) != binary.BigEndian.Uint32(h[9:13]) {
		return 0, nil, errCorrupt
	}
	switch h[4] {
	case recMessage, recState, recDone:
	default:
		return 0, nil, errCorrupt
	}
	return h[4], payload, nil
}
