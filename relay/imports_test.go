package relay

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/mjrelay/mjrelay/"

// TestConfigOnlyAtTheEdges: only the wiring (this package) and the
// commands read the configuration; every other package takes options of
// plain values, so that no import runs back up from a component to
// relay/config.
func TestConfigOnlyAtTheEdges(t *testing.T) {
	importers := map[string]bool{}
	eachGoFile(t, func(p, dir string, f *ast.File) {
		for _, imp := range f.Imports {
			if ip, _ := strconv.Unquote(imp.Path.Value); ip != module+"relay/config" {
				continue
			}
			importers[dir] = true
			if dir != "relay" && dir != "relay/config" && !strings.HasPrefix(dir, "cmd/") {
				t.Errorf("%s (package %s) imports relay/config: give it options of plain values, built in relay/options.go", p, f.Name.Name)
			}
		}
	})
	if !importers["relay"] || !importers["cmd/mjrelay"] {
		t.Fatalf("relay/config importers found: %v; not run from relay/?", importers)
	}
}

// eachGoFile calls fn with the imports of every non-test Go file of the
// module (dir: its directory from the module's root, slash-separated).
func eachGoFile(t *testing.T, fn func(p, dir string, f *ast.File)) {
	t.Helper()
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
		rel, err := filepath.Rel("..", filepath.Dir(p))
		if err != nil {
			return err
		}
		fn(p, filepath.ToSlash(rel), f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("only %d Go files found: not run from relay/?", files)
	}
}
