package testrules

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// clockCalls are the time functions that wait on the clock.
var clockCalls = map[string]bool{"Sleep": true, "After": true, "Tick": true, "NewTimer": true, "NewTicker": true, "AfterFunc": true}

// TestTimeIsMarked keeps the suite's use of the clock deliberate: a
// top-level function of a _test.go file that waits on the clock must run
// in a synctest bubble (it calls synctest itself, or its doc comment
// says "Fake time:", for a helper that only runs inside one), or say
// "Real time:" and why in its doc comment. Real-time tests assert
// outcomes with generous bounds, never that something happened within a
// window; this test lists them, so that they stay few.
func TestTimeIsMarked(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var realTime []string
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		timeName := importName(f, "time")
		if timeName == "" {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil || strings.HasPrefix(fn.Name.Name, "Benchmark") {
				continue // benchmarks measure the wall clock; they assert nothing
			}
			waits, bubbled := scan(fn.Body, timeName, importName(f, "testing/synctest"))
			if !waits || bubbled {
				continue
			}
			doc := fn.Doc.Text()
			name := rel + ":" + funcName(fn)
			switch {
			case strings.Contains(doc, "Real time:"):
				realTime = append(realTime, name)
			case strings.Contains(doc, "Fake time:"):
			default:
				t.Errorf("%s (%s) waits on the clock: run it under testing/synctest, or say \"Real time:\" and why in its doc comment", name, fset.Position(fn.Pos()))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("found %d test files under %s; the walk is looking in the wrong place", files, root)
	}
	sort.Strings(realTime)
	t.Logf("%d test files; %d functions on the wall clock:\n  %s", files, len(realTime), strings.Join(realTime, "\n  "))
}

// importName returns the name path is imported as in f, or "".
func importName(f *ast.File, path string) string {
	for _, im := range f.Imports {
		if strings.Trim(im.Path.Value, `"`) != path {
			continue
		}
		if im.Name != nil {
			return im.Name.Name
		}
		return path[strings.LastIndex(path, "/")+1:]
	}
	return ""
}

// scan reports whether body calls one of clockCalls, and whether it uses
// synctest.
func scan(body *ast.BlockStmt, timeName, synctestName string) (waits, bubbled bool) {
	ast.Inspect(body, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok {
			switch {
			case x.Name == timeName && clockCalls[sel.Sel.Name]:
				waits = true
			case synctestName != "" && x.Name == synctestName:
				bubbled = true
			}
		}
		return true
	})
	return waits, bubbled
}

func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	typ := fn.Recv.List[0].Type
	if st, ok := typ.(*ast.StarExpr); ok {
		typ = st.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}
