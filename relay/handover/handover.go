// Package handover is the relay's process as the service manager sees it:
// the listening sockets it binds or inherits, its successor, and what it
// tells the manager.
//
// Listeners come, in this order, from the relay process this one replaces
// (cloudflare/tableflip passes them on, named), from systemd's socket
// activation (LISTEN_FDS, matched by FileDescriptorName or by address), or
// are bound anew; each is passed on to the next process. Upgrade starts
// that process from the binary on disk with the listeners and returns once
// it is ready; the relay (relay.Restart) hands its queue over meanwhile.
// Ready tells the manager (NOTIFY_SOCKET: systemd's Type=notify, or the
// relay's own init in a container) this process's pid and that it is
// ready, and waits until the manager has read it before the former
// process, told by tableflip, exits: the service's main PID moves to the
// new process without the manager ever seeing the service without one.
package handover

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/coreos/go-systemd/v22/activation"

	"github.com/mjrelay/mjrelay/relay/notify"
)

// Options configure the process.
type Options struct {
	Logger *slog.Logger
	// UpgradeTimeout bounds how long a new process may take to be ready
	// (default 2 min); then it is killed and this one goes on.
	UpgradeTimeout time.Duration
}

// Process is the running relay process. Only one may exist per process.
type Process struct {
	upg    *tableflip.Upgrader
	notify *notify.Sender
	log    *slog.Logger

	mu      sync.Mutex
	systemd []socket // from socket activation, until taken
}

// socket is a listener systemd passed, with its name (FileDescriptorName).
type socket struct {
	name string
	ln   net.Listener
}

// New takes the listeners a former process or systemd passed to this one.
func New(o Options) (*Process, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.UpgradeTimeout <= 0 {
		o.UpgradeTimeout = 2 * time.Minute
	}
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: o.UpgradeTimeout})
	if err != nil {
		return nil, err
	}
	p := &Process{upg: upg, notify: notify.FromEnv(), log: o.Logger}
	// Socket activation is for the first process only: the variables are
	// unset, and the sockets go on to a successor through tableflip.
	for _, f := range activation.Files(true) {
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			p.log.Warn("a socket systemd passed is not a listening stream socket: not used", "name", f.Name(), "err", err)
			continue
		}
		p.systemd = append(p.systemd, socket{name: f.Name(), ln: ln})
	}
	return p, nil
}

// key names a listener among those passed from process to process: its
// role and its configured address, so that a changed address binds anew.
func key(name, addr string) string { return name + " " + addr }

// Listen returns the listener named name ("smtp", "smtps", "http") for
// the configured address addr: inherited from the former process, from
// systemd, or bound now.
func (p *Process) Listen(name, addr string) (net.Listener, error) {
	k := key(name, addr)
	ln, err := p.upg.Fds.Listener("tcp", k)
	if err != nil {
		return nil, err
	}
	if ln != nil {
		p.log.Info("listener taken over from the former process", "listener", name, "addr", ln.Addr().String())
		return ln, nil
	}
	if ln = p.fromSystemd(name, addr); ln != nil {
		if err := p.upg.Fds.AddListener("tcp", k, ln.(tableflip.Listener)); err != nil {
			ln.Close()
			return nil, err
		}
		p.log.Info("listener from systemd socket activation", "listener", name, "addr", ln.Addr().String())
		return ln, nil
	}
	return p.upg.Fds.ListenWithCallback("tcp", k, func(string, string) (net.Listener, error) {
		return net.Listen("tcp", addr)
	})
}

// fromSystemd takes the socket systemd passed for name: the one named so
// (FileDescriptorName=smtp|smtps|http), else one bound to addr.
func (p *Process) fromSystemd(name, addr string) net.Listener {
	p.mu.Lock()
	defer p.mu.Unlock()
	cands := make([]candidate, len(p.systemd))
	for i, s := range p.systemd {
		cands[i] = candidate{name: s.name, addr: s.ln.Addr()}
	}
	i := match(cands, name, addr)
	if i < 0 {
		return nil
	}
	ln := p.systemd[i].ln
	p.systemd = append(p.systemd[:i], p.systemd[i+1:]...)
	return ln
}

// Ready tells the former process (which then stops accepting and exits
// once its sessions end) and the service manager that this one serves.
func (p *Process) Ready() error {
	p.mu.Lock()
	for _, s := range p.systemd {
		p.log.Warn("a socket systemd passed matches no listener of the configuration: closed", "name", s.name, "addr", s.ln.Addr().String())
		s.ln.Close()
	}
	p.systemd = nil
	p.mu.Unlock()
	p.Notify(notify.MainPID(os.Getpid()), notify.Ready, notify.Status(fmt.Sprintf("accepting mail (pid %d)", os.Getpid())))
	if p.upg.HasParent() {
		// The manager must know the new main PID before the former one
		// exits, or it would take the service for stopped.
		if err := p.notify.Barrier(5 * time.Second); err != nil {
			p.log.Warn("the service manager did not confirm the new main PID", "err", err)
		}
	}
	return p.upg.Ready()
}

// Notify sends fields to the service manager, if there is one.
func (p *Process) Notify(fields ...string) {
	if err := p.notify.Send(fields...); err != nil {
		p.log.Warn("cannot notify the service manager", "err", err)
	}
}

// HasParent tells whether a former relay process started this one.
func (p *Process) HasParent() bool { return p.upg.HasParent() }

// WaitForParent returns once the former process has exited (at once
// without one), or with ctx's error.
func (p *Process) WaitForParent(ctx context.Context) error {
	if err := p.upg.WaitForParent(ctx); ctx.Err() != nil {
		return err
	}
	return nil
}

// Upgrade starts a new process from the binary on disk with the
// listeners, and returns once it is ready (or failed, or timed out).
func (p *Process) Upgrade() error {
	for tries := 0; ; tries++ {
		err := p.upg.Upgrade()
		// tableflip notes the former process's exit a moment after
		// WaitForParent has returned: until then it refuses.
		if err == nil || !strings.Contains(err.Error(), "parent hasn't exited") || tries == 100 {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop releases the copies of the listeners this process holds for a
// successor (a restart in progress is cancelled): once the relay closes
// its own, the sockets no longer take connections (unless systemd holds
// them).
func (p *Process) Stop() { p.upg.Stop() }
