package scheme

import (
	"os/exec"
	"strings"
	"testing"
)

// Nothing under internal/ points back up at controllers/ (the manager's
// wiring), but the sandbox, which runs the manager; and the binaries link
// none of the development harness.
func TestNothingPointsBackUp(t *testing.T) {
	const module = "github.com/nodecycle/nodecycle/"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}: {{join .Imports \" \"}}", module+"internal/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		if !strings.HasPrefix(pkg, module+"internal/") || pkg == module+"internal/sandbox" {
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if imp == module+"controllers" || strings.HasPrefix(imp, module+"controllers/") {
				t.Errorf("%s imports %s: internal/ must not point back up at controllers/", pkg, imp)
			}
		}
	}
	out, err = exec.Command("go", "list", "-deps", module+"cmd/manager", module+"cmd/agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, harness := range []string{"internal/controlplane", "internal/sim", "internal/sandbox", "test/", "providers/providertest"} {
			if strings.HasPrefix(dep, module+harness) {
				t.Errorf("the binaries link %s, part of the development harness", dep)
			}
		}
	}
}
