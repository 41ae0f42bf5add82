package relay

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mjrelay/mjrelay/relay/control"
)

// controlSocket serves the control API (mjrelay queue, reload, restart,
// and a new process's handover request) on data_dir/control.sock. It is
// bound when the relay has started, before the relay says it is ready: a
// new process that takes over has the name before the former process,
// which closes its own once told, looks whether the name is still its own
// (control.ListenUnix). A socket that cannot be bound is reported as a
// failure of the running relay, which goes on with its mail.
type controlSocket struct {
	r    *Relay
	srv  *http.Server
	errs chan error
}

func (c *controlSocket) start(context.Context) error {
	c.srv = &http.Server{Handler: control.Handler(liveQueue{c.r}, c.r), ReadHeaderTimeout: 10 * time.Second}
	c.errs = make(chan error, 2)
	c.bind()
	return nil
}

// bind takes the socket's name (again, after a new process that had taken
// it failed) and serves on it.
func (c *controlSocket) bind() {
	l, err := control.ListenUnix(c.r.config().ControlSocket())
	if err != nil {
		c.errs <- err
		return
	}
	go func() {
		if err := c.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			c.errs <- err
		}
	}()
}

func (c *controlSocket) run(ctx context.Context) error {
	select {
	case err := <-c.errs:
		return err
	case <-ctx.Done():
		return nil
	}
}

func (c *controlSocket) stop(context.Context) error { return c.srv.Close() }

// answers tells whether the socket's name leads to a server (this one:
// the process that took it over has failed, so no other answers).
func (c *controlSocket) answers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := control.NewClient(c.r.config().ControlSocket()).List(ctx)
	return err == nil
}
