// Command mutate applies each one-line mutation of a safety rule listed in
// mutations.txt to a copy of the repository, runs the tests named for it,
// and fails when a mutation survives (its tests still pass), times out
// (not caught either) or no longer applies (its line changed: update the
// list). Each set of tests first runs once unmutated: a baseline that
// fails is an error, never a catch. `make mutate` runs it; `-ci` only the
// mutations marked "ci: yes" (fast, for every CI run).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type mutation struct {
	rule, file, from, to string
	tests                []string
	ci                   bool
}

func main() {
	list := flag.String("list", "hack/mutate/mutations.txt", "the mutations")
	only := flag.String("only", "", "run only the mutations whose rule contains this")
	timeout := flag.Duration("timeout", 10*time.Minute, "time limit of one mutation's tests")
	ciOnly := flag.Bool("ci", false, "run only the mutations marked ci: yes")
	skipBaseline := flag.Bool("skip-baseline", false, "do not run each set of tests unmutated first (when they just passed, as in CI after make test)")
	flag.Parse()
	ms, err := parse(*list)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	dir, err := copyRepo()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer os.RemoveAll(dir)
	bad := 0
	baselines := map[string]string{} // by test packages: "" when they pass unmutated
	fmt.Printf("%-9s %-8s %s\n", "result", "time", "rule (file)")
	for _, m := range ms {
		if (*only != "" && !strings.Contains(m.rule, *only)) || (*ciOnly && !m.ci) {
			continue
		}
		start := time.Now()
		key := strings.Join(m.tests, " ")
		failed, ok := baselines[key]
		if !ok && !*skipBaseline {
			if result, out := test(dir, m.tests, *timeout); result != "" {
				failed = result + " unmutated:\n" + out
			}
			baselines[key] = failed
		}
		var result, out string
		if failed != "" {
			result, out = "error", "the tests fail without the mutation: "+failed
		} else {
			result, out = run(dir, m, *timeout)
		}
		fmt.Printf("%-9s %-8s %s (%s)\n", result, time.Since(start).Round(time.Second), m.rule, m.file)
		if result != "caught" {
			bad++
			if result == "stale" || result == "error" || os.Getenv("MUTATE_VERBOSE") != "" {
				fmt.Println(indent(out))
			}
		}
	}
	if bad > 0 {
		fmt.Printf("%d mutation(s) survived, timed out, no longer apply or have failing tests\n", bad)
		os.Exit(1)
	}
	fmt.Println("every mutation was caught")
}

// parse reads blocks of "key: value" lines separated by blank lines; keys
// rule, file, from, to and test (space-separated packages).
func parse(path string) ([]mutation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []mutation
	cur := mutation{}
	flush := func() error {
		if cur.rule == "" && cur.file == "" && cur.from == "" && cur.tests == nil {
			return nil
		}
		if cur.rule == "" || cur.file == "" || cur.from == "" || len(cur.tests) == 0 {
			return fmt.Errorf("%s: incomplete mutation %+v", path, cur)
		}
		ms = append(ms, cur)
		cur = mutation{}
		return nil
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.TrimSpace(line) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not key: value", path, line)
		}
		value = strings.TrimPrefix(value, " ")
		switch key {
		case "rule":
			cur.rule = value
		case "file":
			cur.file = value
		case "from":
			cur.from = value
		case "to":
			cur.to = value
		case "test":
			cur.tests = strings.Fields(value)
		case "ci":
			cur.ci = value == "yes"
		default:
			return nil, fmt.Errorf("%s: unknown key %q", path, key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ms, flush()
}

// copyRepo copies the tracked and new files into a temporary directory, so
// that the working tree is never touched.
func copyRepo() (string, error) {
	out, err := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return "", fmt.Errorf("listing files: %w", err)
	}
	dir, err := os.MkdirTemp("", "nodecycle-mutate-")
	if err != nil {
		return "", err
	}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if err := copyFile(f, filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	return dir, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	if err = os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// run applies m, runs its tests and restores the file: caught (the tests
// failed), survived, or stale (the line to mutate is not there once).
func run(dir string, m mutation, timeout time.Duration) (string, string) {
	path := filepath.Join(dir, m.file)
	orig, err := os.ReadFile(path)
	if err != nil {
		return "stale", err.Error()
	}
	if n := bytes.Count(orig, []byte(m.from)); n != 1 {
		return "stale", fmt.Sprintf("%q occurs %d times in %s", m.from, n, m.file)
	}
	defer func() { _ = os.WriteFile(path, orig, 0o644) }()
	if err = os.WriteFile(path, bytes.Replace(orig, []byte(m.from), []byte(m.to), 1), 0o644); err != nil {
		return "stale", err.Error()
	}
	result, out := test(dir, m.tests, timeout)
	switch result {
	case "":
		return "survived", out
	case "failed":
		return "caught", out
	}
	return result, out
}

// test runs the packages' tests: "" when they pass, "failed", "timeout"
// (not a catch: a mutation that hangs the tests is not shown to be
// caught) or "stale" (they do not compile).
func test(dir string, packages []string, timeout time.Duration) (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"test", "-count=1", "-failfast"}, packages...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	switch {
	case err == nil:
		return "", string(out)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timeout", fmt.Sprintf("no result within %s:\n%s", timeout, out)
	case strings.Contains(string(out), "[build failed]") || strings.Contains(string(out), "setup failed"):
		return "stale", "the tests do not compile:\n" + string(out)
	}
	return "failed", string(out)
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
