package controllers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// reasonArg is the position of the reason among the arguments of the calls
// that record one.
var reasonArg = map[string]int{"event": 1, "fail": 0, "finish": 1, "escalateOrFail": 0, "Eventf": 3, "SetMaintenanceCondition": 4, "waitFor": 0, "condition": 2}

// Every reason the manager writes is a constant of the API package (and
// so in docs/reference.md): no call passes a string literal as a reason.
func TestNoReasonIsALiteral(t *testing.T) {
	for _, dir := range []string{".", "../internal/cycles"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				i, ok := reasonArg[sel.Sel.Name]
				if !ok || i >= len(call.Args) {
					return true
				}
				if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING && lit.Value != `""` {
					t.Errorf("%s: %s(... %s ...): use a v1alpha1.Reason constant", path, sel.Sel.Name, lit.Value)
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
