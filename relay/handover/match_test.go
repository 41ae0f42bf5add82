package handover

import (
	"net"
	"testing"
)

func tcp(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

// TestMatch: a socket systemd passed goes to the listener it is named for
// (FileDescriptorName), else to the listener configured at its address;
// a socket named for another listener never goes to this one.
func TestMatch(t *testing.T) {
	cands := []candidate{
		{"mjrelay.socket", tcp("127.0.0.1:2525")},
		{"mjrelay.socket", tcp("0.0.0.0:2465")},
		{"http", tcp("127.0.0.1:8025")},
		{"smtps", tcp("127.0.0.1:4465")},
		{"mjrelay.socket", tcp("[::1]:2587")},
	}
	for _, tc := range []struct {
		name, addr string
		want       int
	}{
		{"smtp", "127.0.0.1:2525", 0},
		{"smtp", "localhost:2525", 0},
		{"smtp", "0.0.0.0:2525", -1}, // bound to another address than configured
		{"smtps", "0.0.0.0:2465", 3}, // the named one wins
		{"http", "127.0.0.1:9999", 2},
		{"smtp", ":2465", 1},
		{"smtp", "127.0.0.1:8025", -1}, // named for http
		{"smtp", "[::1]:2587", 4},
		{"smtp", "not an address", -1},
	} {
		if got := match(cands, tc.name, tc.addr); got != tc.want {
			t.Errorf("match(%s, %s) = %d, want %d", tc.name, tc.addr, got, tc.want)
		}
	}
}

// TestKey: the name a listener is passed on under is its role and its
// configured address, so that another address in the configuration binds
// anew, and the same listener keeps its socket.
func TestKey(t *testing.T) {
	if key("smtp", "127.0.0.1:2525") == key("smtps", "127.0.0.1:2525") ||
		key("smtp", "127.0.0.1:2525") == key("smtp", "127.0.0.1:2526") ||
		key("smtp", "127.0.0.1:0") != key("smtp", "127.0.0.1:0") {
		t.Error("keys do not tell listeners apart by role and address")
	}
}
