// Package forward carries the intake's calls to the queue into another
// process: while a new relay process takes over from a running one, the
// running one's SMTP sessions go on, and the messages they accept are
// stored by the new process, which holds the queue from then on.
//
// Client is a queue.Queue for the intake (NewID, Admit, Put, Get) that
// sends Admit, Put and Get over a unix socket; Server answers them from a
// queue.Queue in the other process (a queue.Switch, which waits while that
// process is still opening its queue). Put returns only once the other
// process's queue stored the message durably, so the 250 still follows the
// fsync. When the other process cannot be reached, calls fail with
// queue.ErrUnavailable.
package forward

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// admitTimeout bounds an Admit, which has no context of its own.
const admitTimeout = 30 * time.Second

// Client forwards a queue's intake calls to a Server.
type Client struct {
	hc  *http.Client
	ids func() string
}

var _ queue.Queue = (*Client)(nil)

// NewClient forwards to the Server on the unix socket at path; ids makes
// queue ids (the former queue's NewID: ids stay this process's).
func NewClient(path string, ids func() string) *Client {
	return &Client{ids: ids, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 64,
	}}}
}

// NewID makes an id here, without a round trip.
func (c *Client) NewID() string { return c.ids() }

// Admit asks the other process's queue.
func (c *Client) Admit(size int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), admitTimeout)
	defer cancel()
	_, err := c.call(ctx, http.MethodPost, "/admit?size="+strconv.FormatInt(size, 10), nil, 0)
	return err
}

// Put stores the message in the other process's queue and returns once
// it is durable there.
func (c *Client) Put(ctx context.Context, env *queue.Envelope, parts ...[]byte) error {
	ej, err := json.Marshal(env)
	if err != nil {
		return err
	}
	var head [4]byte
	binary.BigEndian.PutUint32(head[:], uint32(len(ej)))
	readers := []io.Reader{bytes.NewReader(head[:]), bytes.NewReader(ej)}
	n := int64(len(head) + len(ej))
	for _, p := range parts {
		readers = append(readers, bytes.NewReader(p))
		n += int64(len(p))
	}
	out, err := c.call(ctx, http.MethodPost, "/put", io.MultiReader(readers...), n)
	if err != nil {
		return err
	}
	var r struct {
		Size int64 `json:"size"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	env.Size = r.Size
	return nil
}

// Get asks the other process's queue for one message.
func (c *Client) Get(id string) (queue.Item, error) {
	ctx, cancel := context.WithTimeout(context.Background(), admitTimeout)
	defer cancel()
	var it queue.Item
	out, err := c.call(ctx, http.MethodGet, "/get?"+url.Values{"id": {id}}.Encode(), nil, 0)
	if err == nil {
		err = json.Unmarshal(out, &it)
	}
	return it, err
}

// errForwardOnly is what the calls the intake does not make return.
var errForwardOnly = fmt.Errorf("forward: only the intake's calls are forwarded: %w", queue.ErrUnavailable)

func (c *Client) Subscribe(func(queue.Item))                  {}
func (c *Client) Body(string) ([]byte, error)                 { return nil, errForwardOnly }
func (c *Client) SetState(context.Context, queue.State) error { return errForwardOnly }
func (c *Client) Done(context.Context, string) error          { return errForwardOnly }
func (c *Client) List() []queue.Item                          { return nil }
func (c *Client) Stats() queue.Stats                          { return queue.Stats{} }
func (c *Client) Close() error                                { c.hc.CloseIdleConnections(); return nil }

// Errors on the wire: the status a queue error travels as.
var statusOf = []struct {
	err    error
	status int
}{
	{queue.ErrFull, http.StatusInsufficientStorage},
	{queue.ErrNotFound, http.StatusNotFound},
	{queue.ErrClosed, http.StatusGone},
	{queue.ErrUnavailable, http.StatusServiceUnavailable},
}

func (c *Client) call(ctx context.Context, method, path string, body io.Reader, n int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://mjrelay"+path, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	if resp.StatusCode == http.StatusOK {
		return out, nil
	}
	text := string(bytes.TrimSpace(out))
	for _, s := range statusOf {
		if resp.StatusCode == s.status {
			return nil, fmt.Errorf("%w (%s)", s.err, text)
		}
	}
	return nil, errors.New("forward: " + text)
}
