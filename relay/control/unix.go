package control

import (
	"net"
	"os"
)

// ListenUnix listens on a unix socket at path, private to the relay's
// user (0600). A socket file left there is replaced: a relay that starts,
// or a new process taking over from a running one, takes the name.
// Closing the listener removes the file only while it is still this
// listener's: the former process of a handover must not remove the name
// its successor took.
func ListenUnix(path string) (net.Listener, error) {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		l.Close()
		return nil, err
	}
	return &unixListener{UnixListener: ul, path: path, fi: fi}, nil
}

type unixListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Stat(l.path); serr == nil && os.SameFile(fi, l.fi) {
		os.Remove(l.path)
	}
	return err
}
