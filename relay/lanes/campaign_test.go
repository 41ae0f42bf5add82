package lanes_test

import (
	"bufio"
	"bytes"
	"net/textproto"
	"os"
	"os/exec"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/lanes"
)

// odooMailing is testdata/odoo_mailing.eml: the bytes Python's email
// library (policy SMTP, as Odoo 17/18 use it) produces for a mass mailing
// with a 120-character unsubscribe URL, written by testdata/odoo_mailing.py.
func odooMailing(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/odoo_mailing.eml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMailingCampaignOdooBytes reads the campaign from Odoo's real header,
// both as the SMTP server reads header fields (net/textproto, unfolded with
// spaces) and as the raw folded lines.
func TestMailingCampaignOdooBytes(t *testing.T) {
	msg := odooMailing(t)
	if !bytes.Contains(msg, []byte("List-Unsubscribe: =?utf-8?q?")) {
		t.Fatal("the fixture's List-Unsubscribe is not RFC 2047-encoded: not what Odoo sends")
	}
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	unfolded, _ := mailjet.HeaderValue(msg, "List-Unsubscribe")
	start := bytes.Index(msg, []byte("List-Unsubscribe: ")) + len("List-Unsubscribe: ")
	end := bytes.Index(msg, []byte("\r\nList-Unsubscribe-Post"))
	const want = "odoo-erp-example-com-mailing-12"
	for name, v := range map[string]string{
		"textproto": h.Get("List-Unsubscribe"),
		"unfolded":  unfolded,
		"folded":    string(msg[start:end]),
	} {
		if got := lanes.MailingCampaign(v); got != want {
			t.Errorf("%s %q: campaign %q, want %q", name, v, got, want)
		}
	}
}

// TestOdooMailingFixtureCurrent regenerates the fixture with the local
// python3 and checks that the committed bytes are still what Python writes.
func TestOdooMailingFixtureCurrent(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is required in CI")
		}
		t.Skip("python3 not installed")
	}
	cmd := exec.Command(py, "testdata/odoo_mailing.py")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("odoo_mailing.py: %v\n%s", err, stderr.String())
	}
	if want := odooMailing(t); !bytes.Equal(out, want) {
		t.Errorf("python3 writes other bytes than testdata/odoo_mailing.eml:\n%s\nfixture:\n%s", out, want)
	}
}

func TestMailingCampaign(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<https://erp.example.com/mailing/12/unsubscribe_oneclick?document_id=3&email=a%40b.c&hash_token=x>", "odoo-erp-example-com-mailing-12"},
		{"<mailto:unsub@example.com>, <http://Odoo.Local:8069/mailing/7/unsubscribe_oneclick>", "odoo-odoo-local-mailing-7"},
		{"<https://erp.example.com/web/unsubscribe>", ""},
		{"", ""},
		// As Python's email library writes values over 77 characters: RFC
		// 2047 encoded-words, raw (folded) and unfolded (as textproto reads them).
		{"=?utf-8?q?=3Chttps=3A//erp=2Eexample=2Ecom/mailing/12/unsu?=\r\n =?utf-8?q?bscribe=5Foneclick=3Fdocument=5Fid=3D3?=\r\n =?utf-8?q?=3E?=", "odoo-erp-example-com-mailing-12"},
		{"=?utf-8?q?=3Chttps=3A//erp=2Eexample=2Ecom/mailing/12/unsu?= =?utf-8?q?bscribe=5Foneclick=3E?=", "odoo-erp-example-com-mailing-12"},
		{"=?UTF-8?B?PGh0dHBzOi8vZXJwLmV4YW1wbGUuY29tL21haWxpbmcvOS91bnN1YnNjcmliZV9vbmVjbGljaz4=?=", "odoo-erp-example-com-mailing-9"},
		{"=?iso-8859-1?q?=3Cmailto=3Aunsub=40example=2Ecom=3E=2C_=3Chttp=3A//odoo=2Elocal/mailing/7/u=3E?=", "odoo-odoo-local-mailing-7"},
		{"=?utf-8?q?=3Chttps=3A//erp=2Eexample=2Ecom/web/unsubscribe=3E?=", ""},
		{"=?utf-8?q?broken", ""},
	}
	for _, tc := range tests {
		if got := lanes.MailingCampaign(tc.in); got != tc.want {
			t.Errorf("MailingCampaign(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOneClickURL(t *testing.T) {
	const u = "https://erp.example.com/mailing/12/unsubscribe_oneclick?document_id=3&email=jane%40example.org&hash_token=abc"
	// Odoo's Python email library encodes and folds the long value.
	encoded := "=?utf-8?q?=3Chttps=3A//erp=2Eexample=2Ecom/mailing/12/unsubscribe=5Foneclick=3Fdocume?=\r\n =?utf-8?q?nt=5Fid=3D3=26email=3Djane=2540example=2Eorg=26hash=5Ftoken=3Dabc=3E?="
	tests := []struct {
		lu, post, want string
	}{
		{"<" + u + ">", "List-Unsubscribe=One-Click", u},
		{encoded, "List-Unsubscribe=One-Click", u},
		{"<mailto:x@example.com>, <" + u + ">", "List-Unsubscribe=One-Click", u},
		{"<" + u + ">", "", ""}, // no RFC 8058 header: not one-click
		{"<https://evil.example/mailing/12/other>", "List-Unsubscribe=One-Click", ""},
		{"<https://evil.example/unsubscribe?x=1>", "List-Unsubscribe=One-Click", ""},
		{"<ftp://erp.example.com/mailing/12/unsubscribe_oneclick>", "List-Unsubscribe=One-Click", ""},
	}
	for _, tc := range tests {
		if got := lanes.OneClickURL(tc.lu, tc.post); got != tc.want {
			t.Errorf("OneClickURL(%q, %q) = %q, want %q", tc.lu, tc.post, got, tc.want)
		}
	}
}
