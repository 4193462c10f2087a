// Package nodeupdate is the in-place update's contract on the Node, shared by
// the manager and the agent: the manager puts a NodeCycle's spec.update
// (paths, modes, digests and the name of the Secret with the contents) on
// the Node with the reboot request (nodecycle.io/update), the agent reads
// the contents from that Secret, checks them against the digests, writes
// the files before it acknowledges the request and checks them on the new
// boot, and says how it went in nodecycle.io/update-status.
package nodeupdate

import (
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

// File is a file of an update with its content, as the manager reads it
// from the bootstrap configuration and the agent from the content Secret.
type File struct {
	Path        string
	Permissions string
	Content     string
}

// Digest is the hex SHA-256 of content.
func Digest(content string) string {
	h := sha256.Sum256([]byte(content))
	return hex.EncodeToString(h[:])
}

// Spec is what the NodeCycle and the Node keep of files: paths, modes and
// digests.
func Spec(files []File) []v1alpha1.UpdateFile {
	out := make([]v1alpha1.UpdateFile, 0, len(files))
	for _, f := range files {
		out = append(out, v1alpha1.UpdateFile{Path: f.Path, Permissions: f.Permissions, SHA256: Digest(f.Content)})
	}
	return out
}

// SecretData is the content Secret's data for files: each content under
// its digest.
func SecretData(files []File) map[string][]byte {
	data := map[string][]byte{}
	for _, f := range files {
		data[Digest(f.Content)] = []byte(f.Content)
	}
	return data
}

// Contents are the files of spec with their contents from its content
// Secret's data; a content missing or not of its digest is an error.
func Contents(spec *v1alpha1.UpdateSpec, data map[string][]byte) ([]File, error) {
	out := make([]File, 0, len(spec.Files))
	for _, f := range spec.Files {
		content, ok := data[f.SHA256]
		if !ok {
			return nil, fmt.Errorf("file %s: the content Secret %s holds no content of digest %s", f.Path, spec.ContentSecret, short(f.SHA256))
		}
		if got := Digest(string(content)); got != f.SHA256 {
			return nil, fmt.Errorf("file %s: the content Secret %s holds content of digest %s, want %s", f.Path, spec.ContentSecret, short(got), short(f.SHA256))
		}
		out = append(out, File{Path: f.Path, Permissions: f.Permissions, Content: string(content)})
	}
	return out, nil
}

// Encode is the value of nodecycle.io/update for spec: no content.
func Encode(spec *v1alpha1.UpdateSpec) string {
	b, _ := json.Marshal(struct {
		ID            string                `json:"id"`
		ContentSecret string                `json:"contentSecret,omitempty"`
		Files         []v1alpha1.UpdateFile `json:"files"`
	}{spec.ID, spec.ContentSecret, spec.Files})
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

// ID names a set of files: a hash of their paths, modes and digests, in
// path order, so the same files give the same ID whatever their order.
func ID(files []v1alpha1.UpdateFile) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b v1alpha1.UpdateFile) int { return strings.Compare(a.Path, b.Path) })
	h := sha256.New()
	for _, f := range sorted {
		m, _ := Mode(f.Path, f.Permissions)
		_, _ = fmt.Fprintf(h, "%s\x00%o\x00%s\x00", f.Path, m, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

// Mode is a file's permissions, 0644 when not given.
func Mode(path, permissions string) (os.FileMode, error) {
	if permissions == "" {
		return 0o644, nil
	}
	m, err := strconv.ParseUint(permissions, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("file %s: permissions %q are not an octal mode", path, permissions)
	}
	return os.FileMode(m), nil
}

// DefaultPaths are the directories under which a file changes in place by
// default, on the manager (what it accepts from Cluster API) and on the
// agent (what it writes): what a reboot applies by itself (sysctl
// settings, kernel modules and their options, systemd units and drop-ins,
// the container runtime's configuration, limits). A file elsewhere may
// need more than a reboot (kubeadm's own files, a boot loader's
// configuration that must be installed), so its change is a replacement.
var DefaultPaths = []string{"/etc/sysctl.d/", "/etc/modules-load.d/", "/etc/modprobe.d/", "/etc/systemd/", "/etc/containerd/", "/etc/security/limits.d/"}

// CheckPath refuses a path that is not clean and absolute ("..", "//",
// a trailing "/", a NUL).
func CheckPath(path string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || strings.Contains(path, "\x00") {
		return fmt.Errorf("file path %q is not a clean absolute path", path)
	}
	return nil
}

// ParsePaths reads a comma-separated list of directories (absolute, clean,
// ending in "/", not "/").
func ParsePaths(list string) ([]string, error) {
	var out []string
	for _, d := range strings.Split(list, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		if !strings.HasPrefix(d, "/") || !strings.HasSuffix(d, "/") || filepath.Clean(d)+"/" != d || d == "/" {
			return nil, fmt.Errorf("%q is not a directory such as /etc/sysctl.d/ (absolute, clean, ending in /, not /)", d)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, errors.New("no directory given")
	}
	return out, nil
}

// Under says whether a clean path lies under one of dirs (each ending in
// "/").
func Under(path string, dirs []string) bool {
	return CheckPath(path) == nil && slices.ContainsFunc(dirs, func(d string) bool { return strings.HasPrefix(path, d) })
}

// Check refuses files that cannot be written safely: relative paths or
// paths with "..", two entries for one path, bad permissions.
func Check(files []File) error {
	seen := map[string]bool{}
	for _, f := range files {
		if err := CheckPath(f.Path); err != nil {
			return err
		}
		if seen[f.Path] {
			return fmt.Errorf("file %s is listed twice", f.Path)
		}
		seen[f.Path] = true
		if _, err := Mode(f.Path, f.Permissions); err != nil {
			return err
		}
	}
	return nil
}

// Write writes each file under root (the node's root file system as the
// agent sees it): into a temporary file of the same directory, synced,
// then renamed over the old one, so a file is either old or new whatever
// happens to the node meanwhile. Missing directories are made (0755).
// Every file must lie under one of allowed (the agent's own allow-list,
// whatever the manager says), and no directory on its way from root nor
// the file itself may be a symbolic link: nothing is written unless every
// file passes.
func Write(root string, allowed []string, files []File) error {
	if err := Check(files); err != nil {
		return err
	}
	for _, f := range files {
		if !Under(f.Path, allowed) {
			return fmt.Errorf("file %s is not under a directory this agent writes (%s)", f.Path, strings.Join(allowed, ", "))
		}
		if err := noLinks(root, f.Path); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := writeFile(root, f); err != nil {
			return err
		}
	}
	return nil
}

// noLinks refuses a path under root that goes through a symbolic link (a
// link would let a file resolve outside the allowed directories); the
// parts that do not exist yet are made as directories.
func noLinks(root, path string) error {
	at := root
	for _, part := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		at = filepath.Join(at, part)
		st, err := os.Lstat(at)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("file %s: %w", path, err)
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("file %s: %s is a symbolic link: refused", path, strings.TrimPrefix(at, root))
		}
	}
	return nil
}

func writeFile(root string, f File) error {
	mode, _ := Mode(f.Path, f.Permissions)
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

// Verify checks that every file under root has the update's content (by
// its digest) and mode; the error names each file that does not.
func Verify(root string, files []v1alpha1.UpdateFile) error {
	var errs []error
	for _, f := range files {
		path := filepath.Join(root, f.Path)
		got, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("file %s: %w", f.Path, err))
			continue
		}
		if d := Digest(string(got)); d != f.SHA256 {
			errs = append(errs, fmt.Errorf("file %s: content is not the update's (sha256 %s, want %s)", f.Path, short(d), short(f.SHA256)))
			continue
		}
		want, _ := Mode(f.Path, f.Permissions)
		if st, err := os.Stat(path); err == nil && st.Mode().Perm() != want {
			errs = append(errs, fmt.Errorf("file %s: mode %o, want %o", f.Path, st.Mode().Perm(), want))
		}
	}
	return errors.Join(errs...)
}

// short is a digest's first 12 digits, as messages show it.
func short(digest string) string { return digest[:min(12, len(digest))] }
