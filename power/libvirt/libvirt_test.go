package libvirt

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/power"
	"github.com/nodecycle/nodecycle/test/framework/powertest"
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

func newProvider(t testing.TB, endpoint string) power.Provider {
	t.Helper()
	p, err := New(power.Settings{Endpoint: endpoint, Options: map[string]string{"uri": "test:///default"}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPowerCycleOnTestDriver(t *testing.T) {
	p := newProvider(t, startLibvirtd(t))
	powertest.PowerCycle(t, p, power.Machine{Candidates: []string{testDomainUUID}, Source: "test"})
	// Also by name, as the policy's machines table may give it.
	powertest.Expect(t, p, power.Machine{Candidates: []string{testDomain}}, power.PowerOn)
}

func TestErrors(t *testing.T) {
	ep := startLibvirtd(t)
	t.Run("unknown domain", func(t *testing.T) {
		p := newProvider(t, ep)
		powertest.FailsWithin(t, 5*time.Second, "no domain matches nosuchvm", "", func(ctx context.Context) error {
			return p.PowerOn(ctx, power.Machine{Candidates: []string{"nosuchvm"}})
		})
	})
	t.Run("unreachable daemon", func(t *testing.T) {
		p := newProvider(t, "unix://"+filepath.Join(t.TempDir(), "missing.sock"))
		powertest.FailsWithin(t, 2*time.Second, "connecting", "", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, power.Machine{Candidates: []string{testDomain}})
			return err
		})
	})
	t.Run("bad endpoint", func(t *testing.T) {
		if _, err := New(power.Settings{Endpoint: "http://host"}); err == nil {
			t.Fatal("want an error for an endpoint that is neither unix nor tcp")
		}
	})
}

func BenchmarkPowerCycle(b *testing.B) {
	p := newProvider(b, startLibvirtd(b))
	powertest.BenchmarkCycle(b, p, power.Machine{Candidates: []string{testDomainUUID}})
}

func TestCloseEndsTheConnection(t *testing.T) {
	p := newProvider(t, startLibvirtd(t))
	powertest.Expect(t, p, power.Machine{Candidates: []string{testDomain}}, power.PowerOn)
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
	powertest.Expect(t, p, power.Machine{Candidates: []string{testDomain}}, power.PowerOn)
}

// A power cycle of a running domain is a reset, counted on the wire: the
// test driver's domain stays "running" whether or not it was reset, so
// only the calls tell a reset from nothing.
func TestPowerCycleByReset(t *testing.T) {
	counter := &procCounter{seen: map[uint32]int{}}
	p := newProvider(t, counter.proxy(t, startLibvirtd(t)))
	powertest.Cycle(t, p, power.Machine{Candidates: []string{testDomain}})
	if n := counter.count(procDomainReset); n != 1 {
		t.Fatalf("%d DomainReset calls, want 1 (the cycle of the running domain)", n)
	}
}

// libvirt RPC procedure numbers (REMOTE_PROC_*).
const procDomainReset = 245

// procCounter sits between the provider and libvirtd and counts the RPC
// calls by procedure number.
type procCounter struct {
	mu   sync.Mutex
	seen map[uint32]int
}

func (c *procCounter) count(proc uint32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[proc]
}

// proxy listens on a new unix socket that forwards to endpoint.
func (c *procCounter) proxy(t *testing.T, endpoint string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "proxy.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("unix", strings.TrimPrefix(endpoint, "unix://"))
			if err != nil {
				_ = client.Close()
				continue
			}
			go func() { _, _ = io.Copy(client, server); _ = client.Close() }()
			go func() { c.forward(server, client); _ = server.Close() }()
		}
	}()
	return "unix://" + sock
}

// forward copies client packets to server, noting each one's procedure:
// a packet is a 4-byte big-endian length (itself included), then program,
// version and procedure, 4 bytes each.
func (c *procCounter) forward(server io.Writer, client io.Reader) {
	for {
		var head [16]byte
		if _, err := io.ReadFull(client, head[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(head[0:4])
		if n < 16 {
			return
		}
		rest := make([]byte, n-16)
		if _, err := io.ReadFull(client, rest); err != nil {
			return
		}
		c.mu.Lock()
		c.seen[binary.BigEndian.Uint32(head[12:16])]++
		c.mu.Unlock()
		if _, err := server.Write(append(head[:], rest...)); err != nil {
			return
		}
	}
}
