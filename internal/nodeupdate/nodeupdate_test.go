package nodeupdate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

var files = []File{
	{Path: "/etc/sysctl.d/90-a.conf", Content: "net.core.somaxconn = 4096\n"},
	{Path: "/etc/modprobe.d/b.conf", Content: "options b x=1\n", Permissions: "0600"},
}

// The ID names the content: the same files in any order give the same,
// a change of content, mode or path another.
func TestIDNamesTheContent(t *testing.T) {
	id := ID(Spec(files))
	if got := ID(Spec([]File{files[1], files[0]})); got != id {
		t.Errorf("reordered files: %s, want %s", got, id)
	}
	for _, change := range []func(f []File){
		func(f []File) { f[0].Content += "x" },
		func(f []File) { f[1].Permissions = "0644" },
		func(f []File) { f[0].Path = "/etc/sysctl.d/91-a.conf" },
	} {
		changed := append([]File(nil), files...)
		change(changed)
		if ID(Spec(changed)) == id {
			t.Errorf("a changed file kept the ID %s: %+v", id, changed)
		}
	}
}

// Written files have the update's content and mode, verify, and leave
// no temporary file; a changed file or mode no longer verifies.
func TestWriteThenVerify(t *testing.T) {
	root := t.TempDir()
	if err := Write(root, DefaultPaths, files); err != nil {
		t.Fatal(err)
	}
	if err := Verify(root, Spec(files)); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, "/etc/modprobe.d/b.conf"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", st.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "/etc/sysctl.d"))
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the file: a temporary file was left", len(entries))
	}
	if err = os.WriteFile(filepath.Join(root, files[0].Path), []byte("other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err = os.Chmod(filepath.Join(root, files[1].Path), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Verify(root, Spec(files))
	if err == nil || !strings.Contains(err.Error(), "90-a.conf: content is not the update's") || !strings.Contains(err.Error(), "b.conf: mode 644, want 600") {
		t.Fatalf("Verify: %v", err)
	}
	if err := Verify(t.TempDir(), Spec(files[:1])); err == nil {
		t.Fatal("a missing file verified")
	}
}

// Paths that could leave the root, twice-listed files and bad modes are
// refused before anything is written.
func TestCheckRefusesUnsafeFiles(t *testing.T) {
	for _, bad := range [][]File{
		{{Path: "etc/relative"}},
		{{Path: "/etc/../root/x"}},
		{{Path: "/etc/a"}, {Path: "/etc/a"}},
		{{Path: "/etc/a", Permissions: "rw-r--r--"}},
		{{Path: "/etc/sysctl.d/a", Permissions: "1777"}},
		// Outside the agent's own directories, whatever the manager said.
		{{Path: "/etc/kubernetes/manifests/x.yaml", Content: "kind: Pod"}},
		{{Path: "/etc/cron.d/x"}},
		{{Path: "/etc/sudoers.d/x"}},
		{{Path: "/etc/systemd/../cron.d/x"}},
		{{Path: "/etc/sysctl.d"}},
		// One bad file refuses the good ones with it.
		{{Path: "/etc/sysctl.d/ok.conf"}, {Path: "/etc/cron.d/x"}},
	} {
		root := t.TempDir()
		if err := Write(root, DefaultPaths, bad); err == nil {
			t.Errorf("%+v was written", bad)
		}
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Errorf("%+v: something was written before the refusal", bad)
		}
	}
}

// A directory on the way that is a symbolic link (to anywhere: the
// node's /etc/cron.d, say) refuses the update, and nothing is written
// through it; so does a file that is a link.
func TestWriteRefusesSymbolicLinks(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "etc/sysctl.d")); err != nil {
		t.Fatal(err)
	}
	if err := Write(root, DefaultPaths, []File{{Path: "/etc/sysctl.d/90-a.conf", Content: "x"}}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("through a linked directory: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("a file was written through the link: %v", entries)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/modprobe.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x"), filepath.Join(root, "etc/modprobe.d/b.conf")); err != nil {
		t.Fatal(err)
	}
	if err := Write(root, DefaultPaths, []File{{Path: "/etc/modprobe.d/b.conf", Content: "x"}}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a linked file: %v", err)
	}
}

// The allow-list reads as the flag gives it, and refuses what is not a
// directory.
func TestParsePaths(t *testing.T) {
	if got, err := ParsePaths(" /etc/sysctl.d/, /etc/systemd/ "); err != nil || len(got) != 2 || got[1] != "/etc/systemd/" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "/", "/etc/sysctl.d", "etc/x/", "/etc/../x/", "/etc//x/"} {
		if got, err := ParsePaths(bad); err == nil {
			t.Errorf("%q: %v", bad, got)
		}
	}
}

// The annotations read back as written; a broken one is an error, not a panic.
func TestAnnotationsRoundTrip(t *testing.T) {
	spec := &v1alpha1.UpdateSpec{ID: ID(Spec(files)), ContentSecret: "c", Files: Spec(files)}
	st := Status{ID: spec.ID, BootID: "b1", Result: Verified}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		v1alpha1.AnnotationUpdate: Encode(spec), v1alpha1.AnnotationUpdateStatus: st.String()}}}
	got, err := Of(node)
	if err != nil || got.ID != spec.ID || len(got.Files) != 2 || got.Files[1] != spec.Files[1] || got.ContentSecret != "c" {
		t.Fatalf("Of: %+v, %v", got, err)
	}
	if s, ok := StatusOf(node); !ok || s != st {
		t.Fatalf("StatusOf: %+v %t", s, ok)
	}
	node.Annotations[v1alpha1.AnnotationUpdate] = "{not json"
	node.Annotations[v1alpha1.AnnotationUpdateStatus] = "{"
	if _, err := Of(node); err == nil {
		t.Error("a broken update annotation read")
	}
	if _, ok := StatusOf(node); ok {
		t.Error("a broken status read")
	}
	if got, err := Of(&corev1.Node{}); got != nil || err != nil {
		t.Errorf("a Node without an update: %+v, %v", got, err)
	}
}

// I6: the contents come from the Secret, each checked against the digest
// the NodeCycle (and the signature) carry; the annotation holds none.
func TestContentsComeFromTheSecretByDigest(t *testing.T) {
	spec := &v1alpha1.UpdateSpec{ID: ID(Spec(files)), ContentSecret: "c", Files: Spec(files)}
	if strings.Contains(Encode(spec), "somaxconn") {
		t.Fatalf("the annotation holds a content: %s", Encode(spec))
	}
	got, err := Contents(spec, SecretData(files))
	if err != nil || len(got) != 2 || got[0] != files[0] || got[1] != files[1] {
		t.Fatalf("%+v %v", got, err)
	}
	swapped := SecretData(files)
	swapped[spec.Files[0].SHA256] = []byte("kernel.x = 1\n")
	if _, err := Contents(spec, swapped); err == nil || !strings.Contains(err.Error(), "content of digest") {
		t.Fatalf("a content other than the digest's: %v", err)
	}
	if _, err := Contents(spec, map[string][]byte{}); err == nil || !strings.Contains(err.Error(), "holds no content") {
		t.Fatalf("no content: %v", err)
	}
}
