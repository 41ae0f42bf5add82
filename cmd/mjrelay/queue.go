package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mjrelay/mjrelay/relay"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/control"
)

// queueAPI is what `mjrelay queue` needs: the running server's control
// socket, or the queue opened directly when no server runs.
type queueAPI interface {
	List(ctx context.Context) (control.Listing, error)
	Retry(ctx context.Context, id string) (int, error)
	Delete(ctx context.Context, id string) error
}

type offlineAPI struct{ q control.Offline }

func (o offlineAPI) List(context.Context) (control.Listing, error) {
	return control.Listing{Stats: o.q.Stats(), Items: o.q.List()}, nil
}
func (o offlineAPI) Retry(ctx context.Context, id string) (int, error) { return o.q.Retry(ctx, id) }
func (o offlineAPI) Delete(ctx context.Context, id string) error       { return o.q.Delete(ctx, id) }

func runQueue(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, path := configFlag("queue", args, stderr)
	all := fs.Bool("all", false, "with retry: every deferred message")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	// Allow flags after the subcommand too: `queue retry --all`.
	if len(rest) > 1 {
		if err := fs.Parse(rest[1:]); err != nil {
			return 2
		}
		rest = append(rest[:1], fs.Args()...)
	}
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cfg, _, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay:", err)
		return 1
	}
	api, closeFn, err := openQueue(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay queue:", err)
		return 1
	}
	defer closeFn()

	switch {
	case rest[0] == "list" && len(rest) == 1:
		l, err := api.List(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "mjrelay queue:", err)
			return 1
		}
		printQueue(stdout, l)
		return 0
	case rest[0] == "retry" && (len(rest) == 2) != *all:
		id := ""
		if !*all {
			id = rest[1]
		}
		n, err := api.Retry(ctx, id)
		if err != nil {
			fmt.Fprintln(stderr, "mjrelay queue retry:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%d message(s) scheduled for immediate delivery\n", n)
		return 0
	case rest[0] == "delete" && len(rest) == 2:
		if err := api.Delete(ctx, rest[1]); err != nil {
			fmt.Fprintln(stderr, "mjrelay queue delete:", err)
			return 1
		}
		fmt.Fprintf(stdout, "deleted %s\n", rest[1])
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}

func openQueue(ctx context.Context, cfg *config.Config) (queueAPI, func(), error) {
	if cfg.Clustered() {
		return openClusterQueue(ctx, cfg)
	}
	q, err := relay.OpenQueue(cfg, nil)
	if errors.Is(err, relay.ErrQueueInUse) {
		return control.NewClient(cfg.ControlSocket()), func() {}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	// With no server running, this process records what it does as the
	// server would.
	rec, closeRec, err := relay.OpenOfflineRecorder(cfg)
	if err != nil {
		q.Close()
		return nil, nil, err
	}
	return offlineAPI{control.Offline{Queue: q, Traffic: rec}}, func() { closeRec(); q.Close() }, nil
}

// printQueue lists the queue: a held message shows "held" as its next
// attempt, and why it is held in place of a last error.
func printQueue(w io.Writer, l control.Listing) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECEIVED\tSIZE\tFROM\tTO\tATTEMPTS\tNEXT\tLAST ERROR OR WHY HELD")
	for _, it := range l.Items {
		to := it.State.Pending
		if to == nil {
			to = it.Envelope.To
		}
		next, why := "now", it.State.LastError
		if it.State.Next.After(time.Now()) {
			next = it.State.Next.Local().Format("01-02 15:04:05")
		}
		if held := it.Held(); held != "" {
			next, why = "held", held
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", it.Envelope.ID, it.Envelope.Received.Local().Format("01-02 15:04:05"),
			it.Envelope.Size, it.Envelope.From, strings.Join(to, ","), it.State.Attempts, next, why)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d message(s), %d bytes on disk\n", l.Stats.Messages, l.Stats.DiskBytes)
}

// openClusterQueue: in cluster mode the queue is the whole cluster's. The
// node running here (its control socket) acts for it, so that what it
// holds locally is included; with none running, the database is used
// directly (a message that a live node holds is deleted by that node).
func openClusterQueue(ctx context.Context, cfg *config.Config) (queueAPI, func(), error) {
	c := control.NewClient(cfg.ControlSocket())
	if _, err := c.List(ctx); err == nil {
		return c, func() {}, nil
	}
	rec, closeRec, err := relay.OpenOfflineRecorder(cfg)
	if err != nil {
		return nil, nil, err
	}
	ctl, closeCtl, err := relay.OpenClusterAdmin(ctx, cfg, rec)
	if err != nil {
		closeRec()
		return nil, nil, err
	}
	return clusterAPI{ctl}, func() { closeCtl(); closeRec() }, nil
}

type clusterAPI struct{ c control.Queue }

func (a clusterAPI) List(context.Context) (control.Listing, error) {
	return control.Listing{Stats: a.c.Stats(), Items: a.c.List()}, nil
}
func (a clusterAPI) Retry(ctx context.Context, id string) (int, error) { return a.c.Retry(ctx, id) }
func (a clusterAPI) Delete(ctx context.Context, id string) error       { return a.c.Delete(ctx, id) }
