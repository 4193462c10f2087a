package scheme

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/nodecycle/nodecycle/"

// Nothing points back up: api/, internal/ and power/ never import
// controllers/ (the manager's wiring); nothing shipped imports the
// development harness under test/ (only cmd/sandbox and the tests link it);
// and the shipped binaries link none of it.
func TestNothingPointsBackUp(t *testing.T) {
	code := moduleImports(t, "{{join .Imports \" \"}}")
	withTests := moduleImports(t, "{{join .Imports \" \"}} {{join .TestImports \" \"}} {{join .XTestImports \" \"}}")
	for pkg, imports := range withTests {
		low := strings.HasPrefix(pkg, "api/") || strings.HasPrefix(pkg, "internal/") || pkg == "power" || strings.HasPrefix(pkg, "power/")
		for _, imp := range imports {
			if low && (imp == "controllers" || strings.HasPrefix(imp, "controllers/")) {
				t.Errorf("%s imports %s: nothing below controllers/ may point back up at it", pkg, imp)
			}
		}
	}
	for pkg, imports := range code {
		shipped := !strings.HasPrefix(pkg, "test/") && !strings.HasPrefix(pkg, "hack/") && pkg != "cmd/sandbox"
		for _, imp := range imports {
			if shipped && strings.HasPrefix(imp, "test/") {
				t.Errorf("%s imports %s, part of the development harness", pkg, imp)
			}
		}
	}
	out, err := exec.Command("go", "list", "-deps", "../../cmd/manager", "../../cmd/agent", "../../cmd/kubectl-nodecycle").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps listed %d packages; the binaries link more", len(deps))
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, module+"test/") || strings.HasPrefix(dep, module+"hack/") {
			t.Errorf("the binaries link %s, part of the development harness", dep)
		}
	}
}

// moduleImports lists the module's packages with the module's packages each
// imports (imports, a go list template), all without the module prefix.
func moduleImports(t *testing.T, imports string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}: "+imports, "./...")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		if !strings.HasPrefix(pkg, module) {
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, module) {
				graph[strings.TrimPrefix(pkg, module)] = append(graph[strings.TrimPrefix(pkg, module)], strings.TrimPrefix(imp, module))
			}
		}
	}
	if len(graph) < 30 {
		t.Fatalf("go list found %d packages of the module", len(graph))
	}
	return graph
}
