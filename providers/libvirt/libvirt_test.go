package libvirt

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/providers"
	"github.com/nodecycle/nodecycle/providers/providertest"
)

// testDomain is the domain that libvirt's built-in test driver
// (test:///default) defines, running.
const (
	testDomain     = "test"
	testDomainUUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"
)

// startLibvirtd runs Debian's libvirtd as the unprivileged user nobody with
// its own HOME and XDG_RUNTIME_DIR, and returns the endpoint of its socket.
func startLibvirtd(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("libvirtd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/libvirtd"); err2 != nil {
			t.Fatalf("libvirtd not found: install Debian's libvirt-daemon (.ci/run does): %v", err)
		}
		bin = "/usr/sbin/libvirtd"
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	dir, err := os.MkdirTemp("", "nodecycle-libvirt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for _, d := range []string{dir, filepath.Join(dir, "home"), filepath.Join(dir, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--timeout", "0")
	cmd.Env = []string{"HOME=" + filepath.Join(dir, "home"), "XDG_RUNTIME_DIR=" + filepath.Join(dir, "run"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	logf, _ := os.Create(filepath.Join(dir, "libvirtd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sock := filepath.Join(dir, "run", "libvirt", "libvirt-sock")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return "unix://" + sock
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "libvirtd.log"))
			t.Fatalf("libvirtd did not create %s:\n%s", sock, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newProvider(t testing.TB, endpoint string) providers.Provider {
	t.Helper()
	p, err := New(providers.Settings{Endpoint: endpoint, Options: map[string]string{"uri": "test:///default"}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPowerCycleOnTestDriver(t *testing.T) {
	p := newProvider(t, startLibvirtd(t))
	providertest.PowerCycle(t, p, providers.Machine{Candidates: []string{testDomainUUID}, Source: "test"})
	// Also by name, as the annotation nodecycle.io/machine-name gives it.
	providertest.Expect(t, p, providers.Machine{Candidates: []string{testDomain}}, providers.PowerOn)
}

func TestErrors(t *testing.T) {
	ep := startLibvirtd(t)
	t.Run("unknown domain", func(t *testing.T) {
		p := newProvider(t, ep)
		providertest.FailsWithin(t, 5*time.Second, "no domain matches nosuchvm", "", func(ctx context.Context) error {
			return p.PowerOn(ctx, providers.Machine{Candidates: []string{"nosuchvm"}})
		})
	})
	t.Run("unreachable daemon", func(t *testing.T) {
		p := newProvider(t, "unix://"+filepath.Join(t.TempDir(), "missing.sock"))
		providertest.FailsWithin(t, 2*time.Second, "connecting", "", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, providers.Machine{Candidates: []string{testDomain}})
			return err
		})
	})
	t.Run("bad endpoint", func(t *testing.T) {
		if _, err := New(providers.Settings{Endpoint: "http://host"}); err == nil {
			t.Fatal("want an error for an endpoint that is neither unix nor tcp")
		}
	})
}

func BenchmarkPowerCycle(b *testing.B) {
	p := newProvider(b, startLibvirtd(b))
	providertest.BenchmarkCycle(b, p, providers.Machine{Candidates: []string{testDomainUUID}})
}

func TestCloseEndsTheConnection(t *testing.T) {
	p := newProvider(t, startLibvirtd(t))
	providertest.Expect(t, p, providers.Machine{Candidates: []string{testDomain}}, providers.PowerOn)
	c := p.(*Provider)
	if c.conn == nil {
		t.Fatal("the provider holds no connection after a call")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c.conn != nil {
		t.Fatal("Close kept the connection")
	}
	// A later call opens a new one.
	providertest.Expect(t, p, providers.Machine{Candidates: []string{testDomain}}, providers.PowerOn)
}

func TestPowerCycleByReset(t *testing.T) {
	p := newProvider(t, startLibvirtd(t))
	providertest.Cycle(t, p, providers.Machine{Candidates: []string{testDomain}})
}
