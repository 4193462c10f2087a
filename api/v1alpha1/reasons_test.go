package v1alpha1

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// Every reason says where it is written and what it means: its doc comment
// is its line in docs/reference.md.
func TestEveryReasonIsDocumented(t *testing.T) {
	for r, documented := range reasonConstants(t) {
		if !documented {
			t.Errorf("reason %s has no doc comment", r)
		}
	}
}

// reasonConstants are the values of the constants of type Reason, and
// whether each has a doc comment.
func reasonConstants(t *testing.T) map[string]bool {
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			v := spec.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "Reason" {
				continue
			}
			for _, val := range v.Values {
				s, err := strconv.Unquote(val.(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				out[s] = strings.TrimSpace(v.Doc.Text()) != ""
			}
		}
	}
	if len(out) < 40 {
		t.Fatalf("found only %d reasons in reasons.go", len(out))
	}
	return out
}
