package handover

import (
	"net"
	"slices"
)

// candidate is a socket systemd passed: its name and bound address.
type candidate struct {
	name string
	addr net.Addr
}

// names are the FileDescriptorName values the relay knows.
var names = []string{"smtp", "smtps", "http"}

// match picks the candidate for the listener name at the configured
// address addr: the first named name, else the first not named for
// another listener whose address is addr's. It returns -1 for none.
func match(cands []candidate, name, addr string) int {
	for i, c := range cands {
		if c.name == name {
			return i
		}
	}
	want, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1
	}
	for i, c := range cands {
		got, ok := c.addr.(*net.TCPAddr)
		if !ok || slices.Contains(names, c.name) || got.Port != want.Port {
			continue
		}
		if want.IP == nil || want.IP.IsUnspecified() {
			if got.IP.IsUnspecified() {
				return i
			}
		} else if got.IP.Equal(want.IP) {
			return i
		}
	}
	return -1
}
