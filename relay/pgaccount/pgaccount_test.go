package pgaccount_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgaccount"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	testKey    = "0123456789abcdef0123456789abcdef"
	testSecret = "fedcba9876543210fedcba9876543210"
)

func open(t *testing.T, url string) *pgaccount.Snapshots {
	t.Helper()
	s, err := pgaccount.New(context.Background(), pgtest.Pool(t, url, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNodesShareTheSnapshot: what one node fetched from Mailjet, a node
// that starts while the API does not answer enforces; the secret is not
// saved.
func TestNodesShareTheSnapshot(t *testing.T) {
	url := pgtest.DB(t)
	api := mjtest.NewAPI(testKey, testSecret)
	defer api.Close()
	api.AddSender("billing@acme.example", mjtest.APIStatusActive, "")
	ctx := context.Background()
	cache := func() *account.Cache {
		c, err := account.New(account.Options{APIURL: api.URL(), APIKey: testKey, SecretKey: testSecret,
			DataDir: t.TempDir(), Snapshots: open(t, url)})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if st := cache().State(); st.Source != account.SourceAPI {
		t.Fatalf("first node: %+v", st)
	}
	api.SetDown(true)
	st := cache().State()
	if st.Source != account.SourceDisk || !st.Known() || !st.Snapshot.Authorize("billing@acme.example").Allowed {
		t.Fatalf("second node, API down: %+v", st)
	}
	saved, err := open(t, url).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := account.EncodeSnapshot(saved)
	if strings.Contains(string(data), testSecret) {
		t.Error("the secret key is saved")
	}
}

// TestSaveKeepsTheNewer: a snapshot older than the saved one of the same
// key does not replace it; one of another key does.
func TestSaveKeepsTheNewer(t *testing.T) {
	s := open(t, pgtest.DB(t))
	ctx := context.Background()
	t1 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	snap := func(at time.Time, key, sender string) *account.Snapshot {
		return account.NewSnapshot(at, key, []account.Sender{{ID: 1, Email: sender, Status: account.StatusActive}}, nil)
	}
	if got, err := s.Load(ctx); got != nil || err != nil {
		t.Fatalf("empty: %v, %v", got, err)
	}
	for _, step := range []struct {
		snap *account.Snapshot
		want string // the sender of the snapshot saved afterwards
	}{
		{snap(t1, testKey, "a@acme.example"), "a@acme.example"},
		{snap(t1.Add(time.Minute), testKey, "b@acme.example"), "b@acme.example"},
		{snap(t1, testKey, "late@acme.example"), "b@acme.example"},
		{snap(t1, "another-key", "c@acme.example"), "c@acme.example"},
	} {
		if err := s.Save(ctx, step.snap); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Senders[0].Email != step.want || !got.Authorize(step.want).Allowed {
			t.Errorf("saved %s, want %s", got.Senders[0].Email, step.want)
		}
	}
}

// TestFollowerSeesTheRefresh: in a cluster one node refreshes the account
// (the others follow): a sender Mailjet activated is seen by a follower
// as soon as the refreshing node saved its snapshot.
func TestFollowerSeesTheRefresh(t *testing.T) {
	url := pgtest.DB(t)
	api := mjtest.NewAPI(testKey, testSecret)
	defer api.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node := func() *account.Cache {
		c, err := account.New(account.Options{APIURL: api.URL(), APIKey: testKey, SecretKey: testSecret,
			DataDir: t.TempDir(), Snapshots: open(t, url), Refresh: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	refresher, follower := node(), node()
	go follower.Follow(ctx)
	api.AddSender("new@acme.example", mjtest.APIStatusActive, "")
	if _, err := refresher.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if st := follower.State(); st.Snapshot.Authorize("new@acme.example").Allowed && st.Source == account.SourceShared {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the follower did not see the new sender: %+v", follower.State())
		}
	}
}

// TestOpenWhileAway: the snapshot of a node that starts while PostgreSQL
// is down opens (Load fails meanwhile, which the account cache ignores);
// once the server answers its schema is created and Save and Load work.
func TestOpenWhileAway(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	s, err := pgaccount.New(ctx, db.StoppedPool(t), nil)
	if err != nil {
		t.Fatalf("New with the server stopped: %v", err)
	}
	if _, err := s.Load(ctx); err == nil || !pg.Temporary(err) {
		t.Fatalf("Load with the server stopped: %v", err)
	}
	if err := db.Start(); err != nil {
		t.Fatal(err)
	}
	snap := account.NewSnapshot(time.Now(), testKey, []account.Sender{{ID: 1, Email: "a@acme.example", Status: account.StatusActive}}, nil)
	if err := s.Save(ctx, snap); err != nil {
		t.Fatalf("Save once the server answers: %v", err)
	}
	if got, err := s.Load(ctx); err != nil || got == nil || !got.Authorize("a@acme.example").Allowed {
		t.Fatalf("Load once the server answers: %v, %v", got, err)
	}
}
