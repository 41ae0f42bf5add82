package account_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
)

func testSnapshot() *account.Snapshot {
	return account.NewSnapshot(time.Now(), testKey, []account.Sender{
		{ID: 1, Email: "John@Example.com", Status: account.StatusActive},
		{ID: 2, Email: "*@wild.example", Status: account.StatusActive},
		{ID: 3, Email: "pending@example.com", Status: account.StatusInactive},
		{ID: 4, Email: "*@pending.example", Status: account.StatusInactive},
		{ID: 5, Email: "both@mixed.example", Status: account.StatusInactive},
		{ID: 6, Email: "*@mixed.example", Status: account.StatusActive},
		{ID: 7, Email: "gone@example.com", Status: account.StatusDeleted},
		{ID: 8, Email: "gone@example.com", Status: account.StatusInactive},
		{ID: 9, Email: "user@bücher.example", Status: account.StatusActive},
	}, []account.Domain{{ID: 10, Domain: "dnsonly.example"}, {ID: 11, Domain: "Example.COM."}})
}

func TestAuthorize(t *testing.T) {
	s := testSnapshot()
	tests := []struct {
		addr        string
		allowed     bool
		found       bool
		senderEmail string
	}{
		{"john@example.com", true, true, "John@Example.com"},
		{"JOHN@EXAMPLE.COM", true, true, "John@Example.com"},
		{"<john@example.com>", true, true, "John@Example.com"},
		{"jane@example.com", false, false, ""},
		{"anyone@wild.example", true, true, "*@wild.example"},
		{"anyone@WILD.example.", true, true, "*@wild.example"},
		{"anyone@sub.wild.example", false, false, ""},
		{"pending@example.com", false, true, "pending@example.com"},
		{"x@pending.example", false, true, "*@pending.example"},
		{"both@mixed.example", true, true, "*@mixed.example"}, // an Active wildcard wins over an Inactive exact
		{"gone@example.com", false, true, "gone@example.com"},
		{"user@bücher.example", true, true, "user@bücher.example"},
		{"user@xn--bcher-kva.example", true, true, "user@bücher.example"},
		{"", false, false, ""},
		{"no-at-sign", false, false, ""},
		{"@example.com", false, false, ""},
	}
	for _, tt := range tests {
		m := s.Authorize(tt.addr)
		if m.Allowed != tt.allowed || m.Found != tt.found || m.Sender.Email != tt.senderEmail {
			t.Errorf("%q: %+v, want allowed %v found %v sender %q", tt.addr, m, tt.allowed, tt.found, tt.senderEmail)
		}
	}
	if m := s.Authorize("gone@example.com"); m.Sender.Status != account.StatusInactive {
		t.Errorf("closest sender should be the Inactive one, got %+v", m.Sender)
	}
}

func TestKnowsDomain(t *testing.T) {
	s := testSnapshot()
	tests := []struct {
		domain string
		want   bool
	}{
		{"example.com", true},     // Active exact sender and dns entry
		{"wild.example", true},    // Active wildcard sender
		{"mixed.example", true},   // Active wildcard sender
		{"dnsonly.example", true}, // dns entry only
		{"DNSONLY.example.", true},
		{"pending.example", false}, // Inactive sender only, no dns entry
		{"unknown.example", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := s.KnowsDomain(tt.domain); got != tt.want {
			t.Errorf("KnowsDomain(%q) = %v, want %v", tt.domain, got, tt.want)
		}
	}
	if d, ok := s.Domain("example.com"); !ok || d.ID != 11 {
		t.Errorf("Domain(example.com) = %+v %v", d, ok)
	}
}

func TestRecordNames(t *testing.T) {
	tests := []struct {
		d                    account.Domain
		ownership, dkimEntry string
	}{
		{account.Domain{Domain: "example.com", OwnerShipTokenRecordName: "mailjet._abc", DKIMRecordName: "mailjet._domainkey.example.com"},
			"mailjet._abc.example.com", "mailjet._domainkey.example.com"},
		{account.Domain{Domain: "example.com", OwnerShipTokenRecordName: "mailjet._abc.example.com.", DKIMRecordName: "mailjet._domainkey"},
			"mailjet._abc.example.com", "mailjet._domainkey.example.com"},
		{account.Domain{Domain: "example.com"}, "", ""},
	}
	for _, tt := range tests {
		if got := tt.d.OwnershipRecord(); got != tt.ownership {
			t.Errorf("OwnershipRecord = %q, want %q", got, tt.ownership)
		}
		if got := tt.d.DKIMRecord(); got != tt.dkimEntry {
			t.Errorf("DKIMRecord = %q, want %q", got, tt.dkimEntry)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", account.SnapshotFile)
	s := testSnapshot()
	if err := account.WriteSnapshot(path, s); err != nil {
		t.Fatal(err)
	}
	got, err := account.ReadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Authorize("anyone@wild.example").Allowed || !got.KnowsDomain("dnsonly.example") || !got.FetchedAt.Equal(s.FetchedAt.Round(0)) {
		t.Fatalf("read back %+v", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	for _, bad := range []string{`{`, `{"version":9,"fetched_at":"2026-01-01T00:00:00Z"}`, `{"version":1}`} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := account.ReadSnapshot(path); err == nil {
			t.Errorf("ReadSnapshot(%s): no error", bad)
		}
	}
}
