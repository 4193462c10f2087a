package v1alpha1

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The README's table of reasons and the Reason constants name the same set.
func TestReadmeListsEveryReason(t *testing.T) {
	inCode := reasonConstants(t)
	inReadme := readmeReasons(t)
	for r := range inCode {
		if !inReadme[r] {
			t.Errorf("reason %s is a constant but not in the README's table", r)
		}
	}
	for r := range inReadme {
		if !inCode[r] {
			t.Errorf("reason %s is in the README's table but no constant", r)
		}
	}
}

// reasonConstants are the values of the constants of type Reason.
func reasonConstants(t *testing.T) map[string]bool {
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
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
				out[s] = true
			}
		}
	}
	if len(out) < 40 {
		t.Fatalf("found only %d reasons in reasons.go", len(out))
	}
	return out
}

// readmeReasons are the names in the first column of the README's table
// under "## Reasons".
func readmeReasons(t *testing.T) map[string]bool {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Reasons\n")
	if !ok {
		t.Fatal(`README.md has no "## Reasons" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	name := regexp.MustCompile("`([A-Za-z]+)`")
	out := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(line, "| `") {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			out[m[1]] = true
		}
	}
	if !out["DrainTimeout"] {
		t.Fatal("the README's table of reasons was not found")
	}
	return out
}
