package relay_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	mjaccount "github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/inspect"
)

// TestDataDirPrivate: after a start and one message, nothing in data_dir
// (queue, traffic store with its WAL, traffic log, account snapshot,
// generated TLS key and certificate, control socket) can be read by
// another user: the WAL and the queue hold message bodies.
func TestDataDirPrivate(t *testing.T) {
	api := mjtest.NewAPI(apiKey, secretKey)
	defer api.Close()
	api.AddSender("*@example.com", "Active", "transactional")
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		withAPI(api, "enforce")(c)
		c.Log.Traffic = "" // data_dir/traffic.log
	})
	c := e.client()
	if _, err := send(c, "bounce@example.com", []string{"client@example.org"}, testMessage("private")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	e.waitDelivered(1)
	dir := e.cfg.DataDir
	want := []string{"queue", "traffic.log", inspect.FileName, inspect.FileName + "-wal", inspect.FileName + "-shm",
		mjaccount.SnapshotFile, "tls/key.pem", "tls/cert.pem", filepath.Base(e.cfg.ControlSocket())}
	e.waitFor("every file to exist", func() bool {
		for _, p := range want {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				return false
			}
		}
		return true
	})
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n++
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			rel, _ := filepath.Rel(dir, p)
			t.Errorf("%s is %s: open to group or others", rel, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < len(want) {
		t.Fatalf("walked %d entries", n)
	}
}
