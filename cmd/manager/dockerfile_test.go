package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The Dockerfile's build stage copies every directory of this module that
// the two commands are built from (it once missed providers/).
func TestDockerfileCopiesEverySourceOfTheCommands(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	list := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/agent", "./cmd/manager")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	copied := map[string]bool{}
	for _, line := range strings.Split(string(dockerfile), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "COPY" {
			copied[strings.TrimSuffix(f[1], "/")] = true
		}
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module dependency, not this repository
		}
		top := strings.Split(rel, string(filepath.Separator))[0]
		if !copied[top] {
			t.Errorf("the Dockerfile does not COPY %s/, which %s needs", top, rel)
		}
	}
}
