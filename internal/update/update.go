// Package update is the in-place update's contract on the Node, shared by
// the manager and the agent: the manager puts a NodeCycle's spec.update on
// the Node with the reboot request (nodecycle.io/update), the agent writes
// the files before it acknowledges the request and checks them on the new
// boot, and says how it went in nodecycle.io/update-status.
package update

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// Result is what the agent reports about an update.
type Result string

const (
	// Written: the files were written, before the reboot.
	Written Result = "Written"
	// Verified: on the boot named in the status, every file has the
	// update's content and mode.
	Verified Result = "Verified"
	// Failed: the files could not be written (the agent did not reboot),
	// or they were not in place on the new boot.
	Failed Result = "Failed"
)

// Status is the value of nodecycle.io/update-status.
type Status struct {
	ID      string `json:"id"`
	BootID  string `json:"bootID"`
	Result  Result `json:"result"`
	Message string `json:"message,omitempty"`
}

// Encode is the value of nodecycle.io/update for spec.
func Encode(spec *v1alpha1.UpdateSpec) string {
	b, _ := json.Marshal(struct {
		ID    string                `json:"id"`
		Files []v1alpha1.UpdateFile `json:"files"`
	}{spec.ID, spec.Files})
	return string(b)
}

// Of reads the update a Node carries; nil when it carries none.
func Of(node *corev1.Node) (*v1alpha1.UpdateSpec, error) {
	v, ok := node.Annotations[v1alpha1.AnnotationUpdate]
	if !ok {
		return nil, nil
	}
	var spec v1alpha1.UpdateSpec
	if err := json.Unmarshal([]byte(v), &spec); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", v1alpha1.AnnotationUpdate, err)
	}
	if spec.ID == "" {
		return nil, fmt.Errorf("annotation %s has no id", v1alpha1.AnnotationUpdate)
	}
	return &spec, nil
}

// StatusOf reads the agent's report; ok is false when there is none or it
// does not parse.
func StatusOf(node *corev1.Node) (Status, bool) {
	var s Status
	v, found := node.Annotations[v1alpha1.AnnotationUpdateStatus]
	if !found || json.Unmarshal([]byte(v), &s) != nil {
		return Status{}, false
	}
	return s, true
}

// String is the annotation value of s.
func (s Status) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ID names a set of files: a hash of their paths, modes and contents, in
// path order, so the same files give the same ID whatever their order.
func ID(files []v1alpha1.UpdateFile) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b v1alpha1.UpdateFile) int { return strings.Compare(a.Path, b.Path) })
	h := sha256.New()
	for _, f := range sorted {
		m, _ := Mode(f)
		_, _ = fmt.Fprintf(h, "%s\x00%o\x00%d\x00%s", f.Path, m, len(f.Content), f.Content)
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

// Mode is a file's permissions, 0644 when not given.
func Mode(f v1alpha1.UpdateFile) (os.FileMode, error) {
	if f.Permissions == "" {
		return 0o644, nil
	}
	m, err := strconv.ParseUint(f.Permissions, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("file %s: permissions %q are not an octal mode", f.Path, f.Permissions)
	}
	return os.FileMode(m), nil
}

// Check refuses files that cannot be written safely: relative paths or
// paths with "..", two entries for one path, bad permissions.
func Check(files []v1alpha1.UpdateFile) error {
	seen := map[string]bool{}
	for _, f := range files {
		if !filepath.IsAbs(f.Path) || filepath.Clean(f.Path) != f.Path || strings.Contains(f.Path, "\x00") {
			return fmt.Errorf("file path %q is not a clean absolute path", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("file %s is listed twice", f.Path)
		}
		seen[f.Path] = true
		if _, err := Mode(f); err != nil {
			return err
		}
	}
	return nil
}

// Write writes each file under root (the node's root file system as the
// agent sees it): into a temporary file of the same directory, synced,
// then renamed over the old one, so a file is either old or new whatever
// happens to the node meanwhile. Missing directories are made (0755).
func Write(root string, files []v1alpha1.UpdateFile) error {
	if err := Check(files); err != nil {
		return err
	}
	for _, f := range files {
		if err := writeFile(root, f); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(root string, f v1alpha1.UpdateFile) error {
	mode, _ := Mode(f)
	path := filepath.Join(root, f.Path)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".nodecycle-*")
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	_, err = tmp.WriteString(f.Content)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Verify checks that every file under root has the update's content and
// mode; the error names each file that does not.
func Verify(root string, files []v1alpha1.UpdateFile) error {
	var errs []error
	for _, f := range files {
		path := filepath.Join(root, f.Path)
		got, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("file %s: %w", f.Path, err))
			continue
		}
		if !bytes.Equal(got, []byte(f.Content)) {
			errs = append(errs, fmt.Errorf("file %s: content is not the update's (sha256 %s, want %s)", f.Path, short(got), short([]byte(f.Content))))
			continue
		}
		want, _ := Mode(f)
		if st, err := os.Stat(path); err == nil && st.Mode().Perm() != want {
			errs = append(errs, fmt.Errorf("file %s: mode %o, want %o", f.Path, st.Mode().Perm(), want))
		}
	}
	return errors.Join(errs...)
}

func short(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])[:12]
}
