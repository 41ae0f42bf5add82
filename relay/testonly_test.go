package relay

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestTestHelpersStayInTests: test support lives in _test.go files or in
// packages named like net/http/httptest (…test: mjtest, storetest,
// spooltest, sendapitest), and only tests and other such packages import
// them or package testing, so that nothing of it reaches the binary.
func TestTestHelpersStayInTests(t *testing.T) {
	files := 0
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && d.Name() != ".."):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go"):
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		if strings.HasSuffix(f.Name.Name, "test") {
			return nil
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if ip == "testing" || strings.HasSuffix(path.Base(ip), "test") {
				t.Errorf("%s (package %s, importable by production code) imports %s", p, f.Name.Name, ip)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("only %d Go files found: not run from relay/?", files)
	}
}
