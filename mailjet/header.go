package mailjet

import (
	"bytes"
	"strconv"
)

// HeaderValue returns the first value of the named header field in a raw
// RFC 5322 message (unfolded, trimmed) and whether it is present. Only the
// header section is read.
func HeaderValue(msg []byte, name string) (string, bool) {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	}
	hdr := msg[:end]
	for len(hdr) > 0 {
		line := hdr
		i := bytes.Index(hdr, []byte("\r\n"))
		if i >= 0 {
			line, hdr = hdr[:i], hdr[i+2:]
		} else {
			hdr = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' || !bytes.EqualFold(bytes.TrimRight(line[:colon], " \t"), []byte(name)) {
			continue
		}
		v := append([]byte(nil), line[colon+1:]...)
		for len(hdr) > 0 && (hdr[0] == ' ' || hdr[0] == '\t') {
			j := bytes.Index(hdr, []byte("\r\n"))
			if j < 0 {
				j = len(hdr)
			}
			v = append(v, hdr[:j]...)
			hdr = hdr[min(j+2, len(hdr)):]
		}
		return string(bytes.TrimSpace(v)), true
	}
	return "", false
}

// HintHeaders returns the X-Mailjet header lines the relay adds over SMTP
// for m: the priority, the queue id as X-MJ-CustomID (so Mailjet's events
// can be joined to the message) and the campaign — each only when the
// message does not carry that header already.
func HintHeaders(m *Message) []byte {
	var b []byte
	if _, ok := HeaderValue(m.Body, "X-Mailjet-Prio"); !ok && m.Hints.Priority >= 0 {
		b = append(b, "X-Mailjet-Prio: "+strconv.Itoa(m.Hints.Priority)+"\r\n"...)
	}
	if _, ok := HeaderValue(m.Body, "X-MJ-CustomID"); !ok && m.ID != "" {
		b = append(b, "X-MJ-CustomID: "+m.ID+"\r\n"...)
	}
	if _, ok := HeaderValue(m.Body, "X-Mailjet-Campaign"); !ok && m.Hints.Campaign != "" {
		b = append(b, "X-Mailjet-Campaign: "+m.Hints.Campaign+"\r\n"...)
	}
	return b
}
