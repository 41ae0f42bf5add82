package account

import (
	"context"
	"errors"
	"fmt"
	"github.com/mjrelay/mjrelay/mailjet"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Fetcher reads a complete account snapshot; *Client implements it.
type Fetcher interface {
	Fetch(ctx context.Context) (*Snapshot, error)
}

// CacheOptions configure a [Cache]. Zero values get the defaults noted.
type CacheOptions struct {
	// Snapshots keep the last good snapshot (nil: the file at Path).
	Snapshots Snapshots
	// Path is the file the last good snapshot is persisted in when
	// Snapshots is nil ("" keeps it in memory only); normally
	// data_dir/mailjet-account.json.
	Path string
	// APIKey is the configured public key; a persisted snapshot of another
	// key is ignored.
	APIKey string
	// Refresh is the period of the refresh loop (policy.refresh). Default 5m.
	Refresh time.Duration
	// OnDemandEvery is the minimum time between two on-demand refreshes.
	// Default 10s.
	OnDemandEvery time.Duration
	// OnDemandWait bounds how long a caller waits for an on-demand refresh
	// before going on with what it has. Default 15s.
	OnDemandWait time.Duration
	// FetchTimeout bounds one complete refresh. Default 60s.
	FetchTimeout time.Duration
	Logger       *slog.Logger
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// Source tells where the current snapshot came from.
const (
	SourceNone   = ""       // no snapshot: the account state is unknown
	SourceAPI    = "api"    // fetched by this process
	SourceDisk   = "disk"   // read from the saved snapshot (Snapshots) at startup
	SourceShared = "shared" // saved by the cluster's node that refreshes it (Follow)
)

// State is what the cache knows, for the policy and the web UI.
type State struct {
	// Snapshot is nil while the account state is unknown.
	Snapshot *Snapshot `json:"-"`
	Source   string    `json:"source"`
	// Age is how old the snapshot is (now - Snapshot.FetchedAt).
	Age time.Duration `json:"age"`
	// LastAttempt is when the last refresh ended, LastError its error ("" if
	// it succeeded).
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// Err is LastError as an error value.
	Err error `json:"-"`
}

// Known reports whether a snapshot is available.
func (s State) Known() bool { return s.Snapshot != nil }

// Stale reports whether the snapshot is not fresh from the API: it was read
// from disk or the last refresh failed.
func (s State) Stale() bool { return s.Snapshot != nil && (s.Source == SourceDisk || s.Err != nil) }

// Cache holds the current snapshot, refreshes it and persists it.
type Cache struct {
	fetcher Fetcher
	opts    CacheOptions
	log     *slog.Logger
	limiter *rate.Limiter

	mu          sync.Mutex
	snap        *Snapshot
	source      string
	lastAttempt time.Time
	lastErr     error
	failures    int
	flight      *flight

	persistMu sync.Mutex
}

type flight struct {
	done    chan struct{}
	err     error
	waiters int // callers waiting on done
}

// NewCache returns a cache that reads the account through f. Call Start
// once, then run Run in a goroutine.
func NewCache(f Fetcher, o CacheOptions) *Cache {
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Minute
	}
	if o.OnDemandEvery <= 0 {
		o.OnDemandEvery = 10 * time.Second
	}
	if o.OnDemandWait <= 0 {
		o.OnDemandWait = 15 * time.Second
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Snapshots == nil && o.Path != "" {
		o.Snapshots = FileSnapshots(o.Path)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{
		fetcher: f,
		opts:    o,
		log:     log.With("component", "mailjet-account"),
		limiter: rate.NewLimiter(rate.Every(o.OnDemandEvery), 1),
	}
}

// Options are what [New] builds the account cache from.
type Options struct {
	// APIURL, APIKey and SecretKey reach the REST API (see [NewClient]);
	// the secret is never logged nor persisted.
	APIURL, APIKey, SecretKey string
	// DataDir holds the persisted snapshot ([SnapshotFile]), unless
	// Snapshots keep it elsewhere.
	DataDir   string
	Snapshots Snapshots
	// Refresh is the period of the refresh loop (policy.refresh).
	Refresh time.Duration
	Logger  *slog.Logger
}

// New builds the REST client and the cache: the snapshot is persisted in
// Snapshots, or DataDir/[SnapshotFile]. It does no I/O; call Start, then
// Run. It fails when a key is missing.
func New(o Options) (*Cache, error) {
	client, err := NewClient(o.APIURL, o.APIKey, o.SecretKey, nil, 0)
	if err != nil {
		return nil, err
	}
	return NewCache(client, CacheOptions{
		Snapshots: o.Snapshots,
		Path:      filepath.Join(o.DataDir, SnapshotFile),
		APIKey:    o.APIKey,
		Refresh:   o.Refresh,
		Logger:    o.Logger,
	}), nil
}

// Start loads the persisted snapshot (if any) and refreshes once from the
// API. It returns an error only when Mailjet rejects the keys (*AuthError),
// which should stop the relay; when the API is unreachable the relay goes on
// with the persisted snapshot, or with an unknown state (mail is accepted
// and held until the sender can be checked) until the API answers.
func (c *Cache) Start(ctx context.Context) error {
	c.loadPersisted(ctx)
	_, err := c.refresh(ctx, "startup", false)
	if ae := (*AuthError)(nil); errors.As(err, &ae) {
		return err
	}
	return nil
}

// Run refreshes every CacheOptions.Refresh until ctx is done; after a failed
// refresh it retries sooner (15s, doubling up to Refresh).
func (c *Cache) Run(ctx context.Context) error {
	t := time.NewTimer(c.nextDelay())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		_, _ = c.refresh(ctx, "scheduled", false)
		t.Reset(c.nextDelay())
	}
}

// Follow is Run for a node of a cluster whose account refresh another
// node runs: it adopts the snapshot that node saves (Snapshots) whenever
// it is newer than the one this node has, checking every Refresh (at most
// 30 s), until ctx is done. A saved snapshot older than twice Refresh (and
// a minute) makes the state stale: the cluster's refresh is late.
func (c *Cache) Follow(ctx context.Context) error {
	t := time.NewTicker(min(c.opts.Refresh, 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c.adopt(ctx)
	}
}

// adopt takes the saved snapshot when it is newer than this node's.
func (c *Cache) adopt(ctx context.Context) {
	if c.opts.Snapshots == nil {
		return
	}
	s, err := c.opts.Snapshots.Load(ctx)
	if err != nil || s == nil || (c.opts.APIKey != "" && s.APIKey != c.opts.APIKey) {
		if err != nil && ctx.Err() == nil {
			c.log.Warn("cannot read the cluster's Mailjet account snapshot", "where", c.opts.Snapshots.Where(), "err", err)
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap == nil || s.FetchedAt.After(c.snap.FetchedAt) {
		c.snap, c.source, c.lastErr = s, SourceShared, nil
	}
	if age := c.opts.Now().Sub(c.snap.FetchedAt); age > 2*c.opts.Refresh+time.Minute {
		c.lastErr = fmt.Errorf("the cluster's Mailjet account refresh is late: the newest snapshot is %s old", age.Round(time.Second))
	}
}

func (c *Cache) nextDelay() time.Duration {
	c.mu.Lock()
	n := c.failures
	c.mu.Unlock()
	if n == 0 {
		return c.opts.Refresh
	}
	d := 15 * time.Second
	for i := 1; i < n && d < c.opts.Refresh; i++ {
		d *= 2
	}
	return min(d, c.opts.Refresh)
}

// State returns the current state.
func (c *Cache) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateLocked()
}

func (c *Cache) stateLocked() State {
	s := State{Snapshot: c.snap, Source: c.source, LastAttempt: c.lastAttempt, Err: c.lastErr}
	if c.lastErr != nil {
		s.LastError = c.lastErr.Error()
	}
	if c.snap != nil {
		s.Age = max(c.opts.Now().Sub(c.snap.FetchedAt), 0)
	}
	return s
}

// Refresh fetches the account now (sharing a refresh already in flight) and
// returns the resulting state and the refresh error.
func (c *Cache) Refresh(ctx context.Context) (State, error) { return c.refresh(ctx, "manual", false) }

// RefreshOnDemand is called when an address is unknown to the current
// snapshot: it refreshes at most once per CacheOptions.OnDemandEvery
// (callers arriving meanwhile join a refresh in flight, or get the current
// state at once) and waits at most CacheOptions.OnDemandWait.
func (c *Cache) RefreshOnDemand(ctx context.Context) State {
	ctx, cancel := context.WithTimeout(ctx, c.opts.OnDemandWait)
	defer cancel()
	st, _ := c.refresh(ctx, "on-demand", true)
	return st
}

func (c *Cache) refresh(ctx context.Context, reason string, onDemand bool) (State, error) {
	c.mu.Lock()
	f := c.flight
	if f == nil {
		if onDemand && !c.limiter.AllowN(c.opts.Now(), 1) {
			st := c.stateLocked()
			c.mu.Unlock()
			return st, nil
		}
		f = &flight{done: make(chan struct{})}
		c.flight = f
		go c.fetch(f, reason)
	}
	f.waiters++
	c.mu.Unlock()
	select {
	case <-f.done:
		return c.State(), f.err
	case <-ctx.Done():
		return c.State(), ctx.Err()
	}
}

// fetch runs one refresh detached from any caller's context, so that a
// caller giving up does not fail the others sharing the flight.
func (c *Cache) fetch(f *flight, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.FetchTimeout)
	defer cancel()
	snap, err := c.fetcher.Fetch(ctx)
	if err == nil && snap == nil {
		err = errors.New("mailjet: fetch returned no snapshot")
	}
	if err == nil {
		snap.FetchedAt = c.opts.Now() // the cache's clock is the one ages are measured with
		// Persist before publishing, so that a finished refresh is saved.
		c.persist(ctx, snap)
	}

	c.mu.Lock()
	c.lastAttempt = c.opts.Now()
	prevErr, prevSource := c.lastErr, c.source
	if err == nil {
		c.snap, c.source, c.lastErr, c.failures = snap, SourceAPI, nil, 0
	} else {
		c.lastErr = err
		c.failures++
	}
	st := c.stateLocked()
	c.mu.Unlock()

	// Log before waking the waiters, so that what they do next comes after.
	if err != nil {
		c.logFailure(reason, st, err)
	} else {
		attrs := []any{"reason", reason, "senders", len(snap.Senders), "domains", len(snap.Domains)}
		if prevErr != nil || prevSource != SourceAPI {
			c.log.Info("Mailjet account state refreshed", attrs...)
		} else {
			c.log.Debug("Mailjet account state refreshed", attrs...)
		}
	}

	c.mu.Lock()
	c.flight = nil
	f.err = err
	close(f.done)
	c.mu.Unlock()
}

func (c *Cache) logFailure(reason string, st State, err error) {
	var ae *AuthError
	level := slog.LevelWarn
	if errors.As(err, &ae) {
		level = slog.LevelError
	}
	if st.Snapshot == nil {
		c.log.Log(context.Background(), slog.LevelError,
			"Mailjet account refresh failed and no snapshot is available: mail is accepted and held until the API answers and its sender can be checked",
			"reason", reason, "err", err)
		return
	}
	c.log.Log(context.Background(), level, "Mailjet account refresh failed; enforcing the last snapshot",
		"reason", reason, "err", err, "snapshot_source", st.Source,
		"snapshot_age", st.Age.Round(time.Second).String(), "snapshot_fetched_at", st.Snapshot.FetchedAt)
}

func (c *Cache) persist(ctx context.Context, s *Snapshot) {
	if c.opts.Snapshots == nil {
		return
	}
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	if err := c.opts.Snapshots.Save(ctx, s); err != nil {
		c.log.Warn("cannot persist the Mailjet account snapshot", "where", c.opts.Snapshots.Where(), "err", err)
	}
}

func (c *Cache) loadPersisted(ctx context.Context) {
	if c.opts.Snapshots == nil {
		return
	}
	where := c.opts.Snapshots.Where()
	s, err := c.opts.Snapshots.Load(ctx)
	switch {
	case err != nil:
		c.log.Warn("ignoring the persisted Mailjet account snapshot", "where", where, "err", err)
		return
	case s == nil:
		return
	case c.opts.APIKey != "" && s.APIKey != c.opts.APIKey:
		c.log.Warn("ignoring the persisted Mailjet account snapshot of another API key",
			"where", where, "snapshot_api_key", mailjet.MaskKey(s.APIKey), "api_key", mailjet.MaskKey(c.opts.APIKey))
		return
	}
	c.mu.Lock()
	if c.snap == nil {
		c.snap, c.source = s, SourceDisk
	}
	st := c.stateLocked()
	c.mu.Unlock()
	c.log.Info("loaded the persisted Mailjet account snapshot", "where", where,
		"senders", len(s.Senders), "domains", len(s.Domains),
		"snapshot_age", st.Age.Round(time.Second).String(), "snapshot_fetched_at", s.FetchedAt)
}
