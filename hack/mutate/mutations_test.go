package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every mutation still applies: its line occurs exactly once in its file
// (so CI fails the day a rule goes stale, not the day someone runs make
// mutate), it changes something, and its test packages exist; and every
// rule fast enough for each CI run is in make mutate-ci.
func TestEveryMutationApplies(t *testing.T) {
	ms, err := parse("mutations.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 100 {
		t.Fatalf("%d mutations read; the list holds more", len(ms))
	}
	root := filepath.Join("..", "..")
	rules := map[string]bool{}
	for _, m := range ms {
		if rules[m.rule] {
			t.Errorf("rule %q is listed twice", m.rule)
		}
		rules[m.rule] = true
		src, err := os.ReadFile(filepath.Join(root, m.file))
		if err != nil {
			t.Errorf("rule %q: %v", m.rule, err)
			continue
		}
		if n := bytes.Count(src, []byte(m.from)); n != 1 {
			t.Errorf("rule %q: %q occurs %d times in %s, not once", m.rule, m.from, n, m.file)
		}
		if m.from == m.to {
			t.Errorf("rule %q changes nothing", m.rule)
		}
		fast := true
		for _, pkg := range m.tests {
			fast = fast && !strings.HasPrefix(pkg, "./test/")
		}
		if m.ci != fast {
			t.Errorf("rule %q: ci: yes is for exactly the rules whose tests are all outside ./test/ (they run in seconds); its tests are %v", m.rule, m.tests)
		}
		for _, pkg := range m.tests {
			if info, err := os.Stat(filepath.Join(root, strings.TrimSuffix(pkg, "/..."))); err != nil || !info.IsDir() {
				t.Errorf("rule %q: test package %s does not exist", m.rule, pkg)
			}
		}
	}
}
