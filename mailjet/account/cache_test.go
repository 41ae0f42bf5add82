package account_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mj "github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newCache(t *testing.T, api *mjtest.API, path string, clk *clock, logs *logBuffer) *account.Cache {
	t.Helper()
	return account.NewCache(newClient(t, api, testSecret), account.CacheOptions{
		Path: path, APIKey: testKey, Now: clk.Now,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
}

func TestCacheUsesPersistedSnapshotWhenAPIDown(t *testing.T) {
	tests := []struct {
		name string
		down func(*mjtest.API)
	}{
		{"503", func(a *mjtest.API) { a.SetDown(true) }},
		{"connections dropped", func(a *mjtest.API) { a.SetDropConnections(true) }},
		{"429", func(a *mjtest.API) { a.SetRateLimited(1000) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newEmulator(t)
			tt.down(api)
			clk := newClock()
			path := filepath.Join(t.TempDir(), account.SnapshotFile)
			old := account.NewSnapshot(clk.Now().Add(-2*time.Hour), testKey,
				[]account.Sender{{ID: 1, Email: "*@example.com", Status: account.StatusActive}}, nil)
			if err := account.WriteSnapshot(path, old); err != nil {
				t.Fatal(err)
			}
			logs := &logBuffer{}
			c := newCache(t, api, path, clk, logs)
			if err := c.Start(context.Background()); err != nil {
				t.Fatalf("Start: %v (an unreachable API must not stop the relay)", err)
			}
			st := c.State()
			if !st.Known() || st.Source != account.SourceDisk || !st.Stale() || st.Age != 2*time.Hour || st.LastError == "" {
				t.Fatalf("state %+v", st)
			}
			if !st.Snapshot.Authorize("john@example.com").Allowed {
				t.Fatal("persisted snapshot not enforced")
			}
			if !strings.Contains(logs.String(), `"snapshot_age":"2h0m0s"`) {
				t.Fatalf("snapshot age not logged:\n%s", logs)
			}
		})
	}
}

func TestCacheStartWithoutSnapshotAndAPIDown(t *testing.T) {
	api := newEmulator(t)
	api.SetDown(true)
	c := newCache(t, api, filepath.Join(t.TempDir(), account.SnapshotFile), newClock(), &logBuffer{})
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st := c.State(); st.Known() || st.LastError == "" {
		t.Fatalf("state %+v, want unknown with an error", st)
	}
	api.SetDown(false)
	api.AddSender("a@example.com", mjtest.APIStatusActive, "")
	if st := c.RefreshOnDemand(context.Background()); !st.Known() || st.Source != account.SourceAPI || st.Stale() {
		t.Fatalf("after the API came back: %+v", st)
	}
}

func TestCacheStartRejectsBadKeys(t *testing.T) {
	for _, empty := range []bool{false, true} {
		api := newEmulator(t)
		api.SetEmptyUnauthorized(empty)
		path := filepath.Join(t.TempDir(), account.SnapshotFile)
		if err := account.WriteSnapshot(path, account.NewSnapshot(time.Now(), testKey, nil, nil)); err != nil {
			t.Fatal(err)
		}
		c := account.NewCache(newClient(t, api, "wrong-secret"), account.CacheOptions{Path: path, APIKey: testKey})
		err := c.Start(context.Background())
		var ae *account.AuthError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), mj.MaskKey(testKey)) || strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), "wrong-secret") {
			t.Fatalf("empty body %v: Start = %v, want an AuthError naming the key only", empty, err)
		}
	}
}

func TestCacheIgnoresSnapshotOfAnotherKey(t *testing.T) {
	api := newEmulator(t)
	api.SetDown(true)
	path := filepath.Join(t.TempDir(), account.SnapshotFile)
	other := account.NewSnapshot(time.Now(), "another-key", []account.Sender{{Email: "*@example.com", Status: account.StatusActive}}, nil)
	if err := account.WriteSnapshot(path, other); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, api, path, newClock(), &logBuffer{})
	_ = c.Start(context.Background())
	if c.State().Known() {
		t.Fatal("snapshot of another API key used")
	}
}

func TestCacheOnDemandRefreshSeesNewlyActivatedSender(t *testing.T) {
	api := newEmulator(t)
	api.AddSender("john@example.com", mjtest.APIStatusInactive, "")
	clk := newClock()
	path := filepath.Join(t.TempDir(), account.SnapshotFile)
	c := newCache(t, api, path, clk, &logBuffer{})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := c.State().Snapshot.Authorize("john@example.com"); m.Allowed || !m.Found || m.Sender.Status != "Inactive" {
		t.Fatalf("before activation: %+v", m)
	}
	if err := api.SetSenderStatus("john@example.com", mjtest.APIStatusActive); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	st := c.RefreshOnDemand(context.Background())
	if !st.Snapshot.Authorize("John@Example.com").Allowed {
		t.Fatal("sender activated at Mailjet not accepted after the on-demand refresh")
	}
	// The refreshed snapshot is on disk, without the secret.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), testSecret) {
		t.Fatal("snapshot file contains the secret key")
	}
	var onDisk account.Snapshot
	if err := json.Unmarshal(data, &onDisk); err != nil || len(onDisk.Senders) != 1 || onDisk.Senders[0].Status != "Active" {
		t.Fatalf("snapshot file: %v %s", err, data)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file mode: %v %v", fi.Mode(), err)
	}
}

func TestCacheOnDemandIsRateLimited(t *testing.T) {
	api := newEmulator(t)
	api.AddSender("a@example.com", mjtest.APIStatusActive, "")
	clk := newClock()
	c := newCache(t, api, "", clk, &logBuffer{})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	perRefresh := api.RequestsTo("/v3/REST/sender")
	steps := []struct {
		advance   time.Duration
		wantFetch bool
	}{
		{0, true}, // the first on-demand refresh goes through
		{0, false},
		{5 * time.Second, false},
		{4 * time.Second, false},
		{time.Second, true}, // 10 s after the last one
		{0, false},
		{time.Hour, true},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		before := api.RequestsTo("/v3/REST/sender")
		c.RefreshOnDemand(context.Background())
		fetched := api.RequestsTo("/v3/REST/sender") - before
		if (fetched == perRefresh) != s.wantFetch || (fetched != 0 && fetched != perRefresh) {
			t.Fatalf("step %d: %d sender requests, want fetch %v", i, fetched, s.wantFetch)
		}
	}
}

func TestNew(t *testing.T) {
	api := newEmulator(t)
	api.AddSender("a@example.com", mjtest.APIStatusActive, "")
	o := account.Options{APIURL: api.URL(), APIKey: testKey, SecretKey: testSecret, DataDir: t.TempDir(), Refresh: 5 * time.Minute}
	c, err := account.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := account.ReadSnapshot(filepath.Join(o.DataDir, "mailjet-account.json"))
	if err != nil || !s.Authorize("a@example.com").Allowed || s.APIKey != testKey {
		t.Fatalf("persisted snapshot: %v %+v", err, s)
	}
	o.SecretKey = ""
	if _, err := account.New(o); err == nil {
		t.Fatal("no keys: no error")
	}
}

// TestCacheFollow: a node that follows the cluster's refresh adopts each
// newer snapshot saved by the node that refreshes, without asking the API,
// and says it is stale once no new one came for twice the refresh period.
func TestCacheFollow(t *testing.T) {
	api := newEmulator(t)
	clk := newClock()
	shared := account.FileSnapshots(filepath.Join(t.TempDir(), account.SnapshotFile))
	save := func(sender string) {
		if err := shared.Save(context.Background(), account.NewSnapshot(clk.Now(), testKey,
			[]account.Sender{{ID: 1, Email: sender, Status: account.StatusActive}}, nil)); err != nil {
			t.Fatal(err)
		}
	}
	const refresh = 20 * time.Millisecond
	c := account.NewCache(newClient(t, api, testSecret), account.CacheOptions{Snapshots: shared, APIKey: testKey,
		Refresh: refresh, Now: clk.Now})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Follow(ctx)
	wait := func(what string, cond func(account.State) bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !cond(c.State()); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited a minute for %s: %+v", what, c.State())
			}
		}
	}
	save("a@example.com")
	wait("the first snapshot", func(st account.State) bool {
		return st.Known() && st.Snapshot.Authorize("a@example.com").Allowed && st.Source == account.SourceShared && !st.Stale()
	})
	clk.Advance(time.Minute)
	save("b@example.com")
	wait("the newer snapshot", func(st account.State) bool { return st.Snapshot.Authorize("b@example.com").Allowed })
	clk.Advance(2*refresh + 2*time.Minute)
	wait("the state stale", func(st account.State) bool { return st.Stale() && st.Snapshot.Authorize("b@example.com").Allowed })
	if n := api.RequestsTo("/v3/REST/sender"); n != 0 {
		t.Errorf("a following node asked the API %d times", n)
	}
}
