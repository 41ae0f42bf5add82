package relay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/control"
	"github.com/mjrelay/mjrelay/relay/forward"
	"github.com/mjrelay/mjrelay/relay/notify"
	"github.com/mjrelay/mjrelay/relay/supervise"
)

// A restart hands a running relay over to a new process started from the
// binary on disk, with no refused connection and no reply the client would
// not have got otherwise:
//
//  1. The running process (Restart) starts the new one, which inherits
//     the listening sockets (Process.Upgrade) and builds everything but the
//     queue; the running one goes on accepting and delivering meanwhile.
//  2. The new process listens on data_dir/handover-PID.sock and asks the
//     running one, over the control socket, for the queue (takeOver).
//  3. The running one (HandOver) stores the messages its sessions accept
//     from then on through the new process (relay/forward: the 250 still
//     comes once the message is durable there), stops delivering (the
//     attempts in flight may end, for handoverGrace; those cut short may
//     be sent twice), closes the queue (and the Odoo feedback's outbox)
//     and answers. /readyz turns false.
//  4. The new process opens the queue, starts delivering, stores the
//     forwarded messages (they waited, at most queueWait, while the queue
//     changed hands), starts accepting and tells it is ready.
//  5. The former process stops accepting, lets its sessions end, and exits.
//
// Should the new process fail once it has the queue, the former one takes
// the queue back and goes on.

// handoverGrace is how long the delivery attempts in flight in the former
// process may take to end when it hands the queue over; then they are cut
// short. Messages accepted meanwhile wait for the queue (queueWait).
const handoverGrace = 5 * time.Second

// handoverState is this process's part in a restart.
type handoverState struct {
	restart sync.Mutex // one restart at a time

	mu         sync.Mutex // the fields below
	upgrading  bool       // a new process is starting: it may take the queue
	handedOver bool
	fwd        *forward.Client
	newPID     int
	replaced   chan struct{} // closed once a new process took over
}

func (h *handoverState) forwarding() *forward.Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fwd
}

// handoverSocket is where a new process takes the messages its
// predecessor's sessions accept during the handover: a name of its own,
// which no other process removes.
func handoverSocket(cfg *config.Config) string {
	return filepath.Join(cfg.DataDir, fmt.Sprintf("handover-%d.sock", os.Getpid()))
}

// Replaced is closed once a restart handed this process's work over to a
// new one: this one should then Shutdown (its sessions finish) and exit.
func (r *Relay) Replaced() <-chan struct{} { return r.handover.replaced }

// Restart starts a new process from the binary on disk (so replacing the
// binary first makes it an upgrade), hands it the listeners and the queue,
// and returns once it is ready (then Replaced is closed) or with why it
// failed (this process then goes on). It first waits, until ctx ends, for
// the process this one replaced to have exited.
func (r *Relay) Restart(ctx context.Context) (control.Restarted, error) {
	p, h := r.o.Process, &r.handover
	if p == nil {
		return control.Restarted{}, errors.New("this relay cannot restart in place (not started by mjrelay serve)")
	}
	if !h.restart.TryLock() {
		return control.Restarted{}, errors.New("a restart is already in progress")
	}
	defer h.restart.Unlock()
	select {
	case <-h.replaced:
		return control.Restarted{}, errors.New("this process has already handed over to a new one")
	default:
	}
	if err := p.WaitForParent(ctx); err != nil {
		return control.Restarted{}, fmt.Errorf("the process this one replaced is still letting its sessions end: %w", err)
	}
	r.log.Info("restarting: a new process started from the binary on disk takes over", "binary", os.Args[0])
	p.Notify(notify.Reloading, notify.MonotonicUsec(), notify.Status("restarting: a new process takes over"))
	h.mu.Lock()
	h.upgrading = true
	h.mu.Unlock()
	err := p.Upgrade()
	h.mu.Lock()
	h.upgrading = false
	handedOver, pid := h.handedOver, h.newPID
	h.mu.Unlock()
	if err == nil {
		r.log.Info("the new process is ready: this one stops accepting and exits once its sessions end", "new_pid", pid)
		close(h.replaced)
		return control.Restarted{PID: pid}, nil
	}
	r.log.Error("restart failed: this process goes on", "err", err)
	if handedOver {
		r.takeBack()
	}
	r.draining.Store(false)
	p.Notify(notify.Ready, notify.Status("restart failed: "+err.Error()))
	return control.Restarted{}, fmt.Errorf("restart failed: %w", err)
}

// HandOver is the running process's side of a handover (step 3), asked
// for by the new process it started.
func (r *Relay) HandOver(ctx context.Context, req control.HandoverRequest) (control.HandoverReply, error) {
	h := &r.handover
	h.mu.Lock()
	defer h.mu.Unlock()
	d := r.cur.Load()
	switch {
	case !h.upgrading:
		return control.HandoverReply{}, errors.New("no restart in progress: the queue goes only to the process a restart starts")
	case h.handedOver || d == nil:
		return control.HandoverReply{}, errors.New("the queue is not open here")
	}
	r.draining.Store(true)
	r.log.Info("handing the queue over to the new process", "to_pid", req.PID)
	fwd := forward.NewClient(req.Socket, d.q.NewID)
	r.Queue.Set(fwd) // returns once the messages being stored here are
	sctx, cancel := context.WithTimeout(ctx, handoverGrace)
	defer cancel()
	cut, err := r.stopDelivery(sctx)
	if err != nil {
		r.log.Warn("closing the queue", "err", err)
	}
	h.fwd, h.handedOver, h.newPID = fwd, true, req.PID
	r.log.Info("queue handed over: the messages accepted here are stored by the new process", "to_pid", req.PID, "cut_short", cut)
	if cut > 0 {
		r.log.Warn("deliveries cut short by the handover: the new process retries them, and Mailjet may have taken them already (they may arrive twice)",
			"cut_short", cut)
	}
	return control.HandoverReply{PID: os.Getpid(), CutShort: cut}, nil
}

// takeBack reopens the queue after the new process failed with it.
func (r *Relay) takeBack() {
	h := &r.handover
	h.mu.Lock()
	defer h.mu.Unlock()
	r.log.Warn("the new process failed after it took the queue: this process takes it back")
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.startDelivery(ctx, true)
		cancel()
		if err == nil {
			break
		}
		r.log.Error("cannot take the queue back; trying again in 5 s", "err", err)
		time.Sleep(5 * time.Second)
	}
	h.fwd.Close()
	h.fwd, h.handedOver = nil, false
	// The new process may have taken the control socket's name before it
	// failed: take it back too.
	if _, err := os.Stat(r.config().ControlSocket()); err != nil || !r.control.answers() {
		r.control.bind()
	}
}

// takeOver is the new process's request for the queue (step 2).
func (r *Relay) takeOver(ctx context.Context) error {
	cfg := r.config()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	reply, err := control.NewClient(cfg.ControlSocket()).HandOver(ctx, control.HandoverRequest{PID: os.Getpid(), Socket: handoverSocket(cfg)})
	if err == nil {
		r.log.Info("the former process handed its queue over", "from_pid", reply.PID, "cut_short", reply.CutShort)
		return nil
	}
	// A former process that died holds nothing: the queue is free.
	gone, cancelGone := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelGone()
	if r.o.Process.WaitForParent(gone) != nil {
		return fmt.Errorf("the running relay did not hand its queue over: %w (a restart keeps data_dir; to change it, stop the relay and start it again)", err)
	}
	r.log.Warn("the former process is gone: taking the queue", "err", err)
	return nil
}

// handoverIntake is the new process's end of the forwarding: it stores
// what the former process's sessions accept, into this process's queue
// once it has it, until the former process exits.
func (r *Relay) handoverIntake() supervise.Component {
	var srv *forward.Server
	return supervise.Component{Name: "handover intake",
		Start: func(context.Context) error {
			removeStaleSockets(r.config().DataDir)
			l, err := control.ListenUnix(handoverSocket(r.config()))
			if err != nil {
				return err
			}
			srv = forward.NewServer(r.Queue)
			go srv.Serve(l)
			return nil
		},
		Run: func(ctx context.Context) error {
			if r.o.Process.WaitForParent(ctx) == nil {
				srv.Close()
				r.log.Info("the former process has exited")
			}
			<-ctx.Done()
			return nil
		},
		Stop: func(context.Context) error { return srv.Close() },
	}
}

// removeStaleSockets removes the handover sockets that processes which
// died (killed) left in dir.
func removeStaleSockets(dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, "handover-*.sock"))
	for _, n := range names {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(n), "handover-%d.sock", &pid); err == nil && pid > 0 &&
			errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			os.Remove(n)
		}
	}
}
