// Package pid1 is what `mjrelay serve` does as the first process of a
// container (PID 1). Docker sends its signals to PID 1 and stops the
// container as soon as PID 1 exits, and nobody else reaps orphaned
// processes there; yet a restart (SIGUSR2, `mjrelay restart`) makes a new
// relay process and ends the former one. So as PID 1 the relay is a tiny
// init instead: it starts the relay server as its child, learns which
// process is the server from the service manager's notifications (it
// listens on NOTIFY_SOCKET: MAINPID= moves with each restart), forwards
// SIGHUP and SIGUSR2 to that process and SIGTERM, SIGINT and SIGQUIT to
// every server process, reaps every process that ends, and exits, with
// the last server's status, once no process is left.
package pid1

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mjrelay/mjrelay/relay/notify"
)

// Env is the variable that turns the init on ("1", even when not PID 1:
// the init then makes itself the subreaper of the servers) or off ("0").
const Env = "MJRELAY_INIT"

// Wanted tells whether `mjrelay serve` should run as the init: as PID 1,
// unless MJRELAY_INIT=0, or with MJRELAY_INIT=1.
func Wanted() bool {
	switch os.Getenv(Env) {
	case "0":
		return false
	case "1":
		return true
	}
	return os.Getpid() == 1
}

// init's state: the server processes it knows and the main one.
type state struct {
	mu      sync.Mutex
	main    int
	servers map[int]bool
	status  int // the exit status of the last main process to end
}

// Run starts argv (the same `mjrelay serve`, with MJRELAY_INIT=0 so that
// it is the server) and is its init until no process is left; it returns
// the exit status to exit with.
func Run(argv []string, log *slog.Logger) int {
	if os.Getpid() != 1 {
		// Orphans (a former server's successor) come to this process.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Error("init: cannot become the subreaper", "err", err)
			return 1
		}
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	l, err := notify.Listen(fmt.Sprintf("@mjrelay-init-%d-%s", os.Getpid(), hex.EncodeToString(nonce[:])))
	if err != nil {
		log.Error("init: cannot open the notification socket", "err", err)
		return 1
	}
	defer l.Close()

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR2, syscall.SIGCHLD)
	defer signal.Stop(sigs)

	path, err := exec.LookPath(argv[0])
	if err != nil {
		log.Error("init: cannot find the relay's binary", "err", err)
		return 1
	}
	proc, err := os.StartProcess(path, argv, &os.ProcAttr{Env: childEnv(os.Environ(), l.Addr()),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err != nil {
		log.Error("init: cannot start the relay", "err", err)
		return 1
	}
	st := &state{main: proc.Pid, servers: map[int]bool{proc.Pid: true}}
	log.Info("init: started the relay", "pid", proc.Pid)
	go st.listen(l, log)

	for sig := range sigs {
		switch sig {
		case syscall.SIGCHLD:
			if st.reap(log) {
				log.Info("init: no process left; exiting", "status", st.status)
				return st.status
			}
		case syscall.SIGHUP, syscall.SIGUSR2:
			st.mu.Lock()
			pid := st.main
			st.mu.Unlock()
			log.Info("init: forwarding a signal to the relay", "signal", sig.String(), "pid", pid)
			syscall.Kill(pid, sig.(syscall.Signal))
		default:
			st.mu.Lock()
			for pid := range st.servers {
				syscall.Kill(pid, sig.(syscall.Signal))
			}
			st.mu.Unlock()
		}
	}
	return 0
}

// childEnv is the server's environment: the init's, with the notification
// socket, and the init turned off.
func childEnv(env []string, notifyAddr string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, notify.Env+"=") && !strings.HasPrefix(kv, Env+"=") {
			out = append(out, kv)
		}
	}
	return append(out, notify.Env+"="+notifyAddr, Env+"=0")
}

// listen follows the servers' notifications: MAINPID= names the main one.
// A message is applied before the next is read, so a server's barrier
// after its MAINPID= returns once the init knows it.
func (st *state) listen(l *notify.Listener, log *slog.Logger) {
	for {
		m, err := l.Read()
		if err != nil {
			return
		}
		if pid, err := strconv.Atoi(m["MAINPID"]); err == nil && pid > 0 {
			st.mu.Lock()
			if pid != st.main {
				log.Info("init: the relay's main process is now", "pid", pid)
			}
			st.main, st.servers[pid] = pid, true
			st.mu.Unlock()
		}
	}
}

// reap collects every child that ended; it reports whether none is left.
func (st *state) reap(log *slog.Logger) bool {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.ECHILD) {
			return true
		}
		if err != nil || pid <= 0 {
			return false
		}
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		st.mu.Lock()
		if st.servers[pid] {
			log.Info("init: a relay process exited", "pid", pid, "status", code)
			delete(st.servers, pid)
		}
		if pid == st.main {
			st.status = code
		}
		st.mu.Unlock()
	}
}
