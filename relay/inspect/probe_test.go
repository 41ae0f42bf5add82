package inspect

import (
	"database/sql"
	"testing"

	_ "modernc.org/sqlite"
)

func TestProbe(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/x.db?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	var v string
	db.QueryRow("select sqlite_version()").Scan(&v)
	t.Log(v)
	if _, err := db.Exec(`CREATE VIRTUAL TABLE f USING fts5(a, b, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2')`); err != nil {
		t.Fatal(err)
	}
	db.Exec(`INSERT INTO f(rowid,a,b) VALUES (5,'Invoice INV/2026/001','john@example.com')`)
	db.Exec(`INSERT INTO f(rowid,a,b) VALUES (7,'Facture','jöhn@exämple.com')`)
	if _, err := db.Exec(`DELETE FROM f WHERE rowid=5`); err != nil {
		t.Fatal(err)
	}
	rows, _ := db.Query(`SELECT rowid FROM f WHERE f MATCH '"john@example"*' ORDER BY rowid DESC`)
	for rows.Next() {
		var r int
		rows.Scan(&r)
		t.Log("row", r)
	}
}
