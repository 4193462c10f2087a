//go:build e2e && dockerfile

package image

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

// TestDockerfile (make e2e-dockerfile; build tag dockerfile, as it compiles
// everything in a container, about 7 minutes on 2 cores) builds the root Dockerfile as `docker build .` does, with
// local stand-ins for the images it names (there is no registry here): a
// Go image made of this host's Go toolchain and a busybox image of the
// static busybox that make image uses, and a module proxy serving this
// host's module cache. The result must run and be configured as the image
// of make image is.
func TestDockerfile(t *testing.T) {
	tag := fmt.Sprintf("%d", os.Getpid())
	offline, version := "nodecycle-image-test:offline-"+tag, "v0.0.0-test."+tag
	buildImage(t, offline, version)
	busybox := filepath.Join(localkube.RepoRoot(), "out", "image", "rootfs", "bin", "busybox")

	goImage := "nodecycle-test/golang:" + tag
	importImage(t, goImage, []string{"ENV PATH=/usr/local/go/bin:/bin", "ENV HOME=/root", "ENV GOTOOLCHAIN=local"}, func(w *tar.Writer) {
		addFile(t, w, busybox, "bin/busybox", 0o755)
		addLink(t, w, "busybox", "bin/sh")
		addFile(t, w, "/etc/ssl/certs/ca-certificates.crt", "etc/ssl/certs/ca-certificates.crt", 0o644)
		addTree(t, w, runtime.GOROOT(), "usr/local/go")
		addDir(t, w, "tmp", 0o1777)
		addDir(t, w, "root", 0o755)
	})
	busyboxImage := "nodecycle-test/busybox:" + tag
	importImage(t, busyboxImage, nil, func(w *tar.Writer) { addFile(t, w, busybox, "bin/busybox", 0o755) })

	// The module proxy: this host's module cache, on the address build
	// containers reach the host at (their default gateway).
	route := strings.Fields(docker(t, "run", "--rm", "--entrypoint", "/bin/busybox", busyboxImage, "ip", "route", "show", "default"))
	if len(route) < 3 || route[0] != "default" {
		t.Fatalf("default route of a container: %v", route)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(route[2], "0"))
	if err != nil {
		t.Fatal(err)
	}
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	// What the build's go mod download asks for, in the cache first.
	download := exec.Command("go", "mod", "download")
	download.Dir = localkube.RepoRoot()
	if out, err := download.CombinedOutput(); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Join(strings.TrimSpace(string(modcache)), "cache", "download")))}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	image := "nodecycle-image-test:dockerfile-" + tag
	cmd := exec.Command("docker", "build", "-t", image,
		"--build-arg", "GO_IMAGE="+goImage, "--build-arg", "BUSYBOX_IMAGE="+busyboxImage,
		"--build-arg", "GOPROXY=http://"+ln.Addr().String(), "--build-arg", "VERSION="+version, ".")
	cmd.Dir = localkube.RepoRoot()
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker build .: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })

	for _, format := range []string{"{{json .Config.Labels}}", "{{.Config.User}}", "{{json .Config.Entrypoint}}", "{{json .Config.Cmd}}"} {
		if got, want := docker(t, "image", "inspect", "--format", format, image), docker(t, "image", "inspect", "--format", format, offline); got != want {
			t.Errorf("%s: docker build . gives %s, make image %s", format, got, want)
		}
	}
	if got := docker(t, "run", "--rm", image, "--version"); got != "nodecycle-manager "+version {
		t.Errorf("manager --version printed %q", got)
	}
	if got := docker(t, "run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "/usr/local/bin/nodecycle-agent --version; id -u; command -v nsenter"); got != "nodecycle-agent "+version+"\n65532\nnsenter" && got != "nodecycle-agent "+version+"\n65532\n/usr/bin/nsenter" {
		t.Errorf("agent, user and nsenter: %q", got)
	}
}

// importImage makes a local image from the files fill writes.
func importImage(t *testing.T, name string, changes []string, fill func(*tar.Writer)) {
	t.Helper()
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	cmd := exec.Command("docker", append(args, "-", name)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := tar.NewWriter(stdin)
	fill(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("docker import %s: %v\n%s", name, err, stderr.String())
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", name).Run() })
}

func addDir(t *testing.T, w *tar.Writer, name string, mode int64) {
	t.Helper()
	if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}); err != nil {
		t.Fatal(err)
	}
}

func addLink(t *testing.T, w *tar.Writer, target, name string) {
	t.Helper()
	if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}); err != nil {
		t.Fatal(err)
	}
}

func addFile(t *testing.T, w *tar.Writer, src, name string, mode int64) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: st.Size()}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, f); err != nil {
		t.Fatal(err)
	}
}

// addTree copies the directory src to name, keeping modes and links.
func addTree(t *testing.T, w *tar.Writer, src, name string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		dst := filepath.ToSlash(filepath.Join(name, rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			addDir(t, w, dst, int64(info.Mode().Perm()))
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			addLink(t, w, target, dst)
		case info.Mode().IsRegular():
			addFile(t, w, path, dst, int64(info.Mode().Perm()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
