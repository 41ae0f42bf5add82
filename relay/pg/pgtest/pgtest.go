// Package pgtest gives tests a real PostgreSQL: a throw-away cluster of
// the machine's own PostgreSQL server (initdb, then the server on
// 127.0.0.1 and a free port, run as an unprivileged user when the tests run
// as root, and killed with the test process), and a fresh database per
// test. Without a PostgreSQL server on the machine the tests are skipped,
// except in CI (CI set), where they fail: CI installs Debian's postgresql
// package for them. A package using Shared calls Main from its TestMain.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/relay/pg"
)

// Cluster is a running throw-away PostgreSQL cluster.
type Cluster struct {
	dir, bin string
	Port     int
	uid, gid int // who runs the server (0: the current user)
	mu       sync.Mutex
	server   *exec.Cmd
	exited   chan struct{}
}

// Main runs the tests, then stops the shared cluster and removes it.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
)

// Shared returns the test binary's cluster, started on first use and left
// running until the process ends (it is stopped by Main's cleanup, or by
// the OS: its data directory is in a temporary directory).
func Shared(t testing.TB) *Cluster {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		unavailable(t, sharedErr)
	}
	return shared
}

// New starts a cluster of the test's own (for tests that stop and start
// the server); it is removed when the test ends.
func New(t testing.TB) *Cluster {
	t.Helper()
	c, err := start()
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() { c.Stop(); os.RemoveAll(c.dir) })
	return c
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("PostgreSQL is needed for this test and could not be started: %v (CI installs Debian's postgresql package)", err)
	}
	t.Skipf("no PostgreSQL server on this machine: %v", err)
}

// DB creates a fresh database in the shared cluster and returns its URL;
// it is dropped when the test ends.
func DB(t testing.TB) string {
	t.Helper()
	return Shared(t).DB(t)
}

// DB creates a fresh database in c and returns its URL.
func (c *Cluster) DB(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			return // the test stopped the server
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return c.URL(name)
}

// URL is the connection URL of database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Stop stops the server at once, as a crash would (SIGQUIT: immediate
// shutdown, no checkpoint; committed work is in the WAL).
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server == nil {
		return nil
	}
	c.server.Process.Signal(syscall.SIGQUIT)
	<-c.exited
	c.server = nil
	return nil
}

// Start starts a stopped server again, on the same port.
func (c *Cluster) Start() error { return c.startServer() }

func start() (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			u, err = user.Lookup("nobody")
		}
		if err != nil {
			return nil, fmt.Errorf("running as root and no unprivileged user to run PostgreSQL: %w", err)
		}
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
	}
	if c.dir, err = os.MkdirTemp("", "mjrelay-pg-"); err != nil {
		return nil, err
	}
	if c.uid != 0 {
		os.Chown(c.dir, c.uid, c.gid)
	}
	c.exited = make(chan struct{})
	if out, err := c.run(filepath.Join(bin, "initdb"), "-D", c.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	if c.Port, err = freePort(); err != nil {
		return nil, err
	}
	if err := c.startServer(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) startServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server != nil {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.data(), "-p", strconv.Itoa(c.Port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300", "-c", "fsync=on")
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the test process, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if c.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid)}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(context.Background(), c.URL("postgres"))
		if err == nil {
			conn.Close(context.Background())
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
			return fmt.Errorf("PostgreSQL exited at start: %s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("PostgreSQL did not accept connections within 60 s: %v", err)
		}
	}
	c.server, c.exited = cmd, exited
	return nil
}

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	if c.uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid)}}
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

// findBin finds the directory of the newest installed PostgreSQL server.
func findBin() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Pool opens a pool of at most maxConns connections on the database at
// url (relay/pg's, as a node opens it), closed when the test ends.
func Pool(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	pool, err := pg.Open(context.Background(), pg.Options{URL: url, MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// StoppedPool stops c's server and returns a pool on its database
// "postgres" opened as a relay node opens its own (pg.Options.Away): for
// what must open while the database is down. It is closed when the test
// ends.
func (c *Cluster) StoppedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	pool, err := pg.Open(context.Background(), pg.Options{URL: c.URL("postgres"), Away: true})
	if err != nil {
		t.Fatalf("a pool with the server stopped (Away): %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
