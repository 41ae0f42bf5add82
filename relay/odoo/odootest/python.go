package odootest

import (
	"os"
	"os/exec"
	"testing"
)

// Python3 finds the interpreter whose email and xmlrpc libraries Odoo
// uses, for tests that check the relay's output against them. Without it
// the test is skipped, or fails when the CI variable is set (CI installs
// it).
func Python3(t testing.TB) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is required in CI")
		}
		t.Skip("python3 not installed")
	}
	return py
}
