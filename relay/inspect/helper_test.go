package inspect_test

import (
	"context"
	"database/sql"
	"testing"
)

// lockDB takes the store's write lock from another connection until the
// returned function is called.
func lockDB(t testing.TB, path string) (unlock func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	return func() {
		conn.ExecContext(context.Background(), `COMMIT`)
		conn.Close()
		db.Close()
	}
}
