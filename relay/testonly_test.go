package relay

import (
	"go/ast"
	"path"
	"strconv"
	"strings"
	"testing"
)

// TestTestHelpersStayInTests: test support lives in _test.go files or in
// packages named like net/http/httptest (…test: mjtest, storetest,
// spooltest, sendapitest), and only tests and other such packages import
// them or package testing, so that nothing of it reaches the binary.
func TestTestHelpersStayInTests(t *testing.T) {
	eachGoFile(t, func(p, _ string, f *ast.File) {
		if strings.HasSuffix(f.Name.Name, "test") {
			return
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if ip == "testing" || strings.HasSuffix(path.Base(ip), "test") {
				t.Errorf("%s (package %s, importable by production code) imports %s", p, f.Name.Name, ip)
			}
		}
	})
}
