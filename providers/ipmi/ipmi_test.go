package ipmi

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/providers"
	"github.com/nodecycle/nodecycle/providers/providertest"
)

// startBMC runs ipmi_sim (Debian's openipmi) on a loopback UDP port with
// user admin/secret and a chassis whose power state lives in a file.
func startBMC(t *testing.T) (addr string) {
	t.Helper()
	bin, err := exec.LookPath("ipmi_sim")
	if err != nil {
		t.Fatalf("ipmi_sim not found: install Debian's openipmi (.ci/run does): %v", err)
	}
	dir := t.TempDir()
	port := freeUDPPort(t)
	script, _ := filepath.Abs("testdata/chassis_control.sh")
	lan := fmt.Sprintf(`name "nodecycle"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s %s 0x20"
  user 1 true  ""      "test"   user  10 none md2 md5 straight
  user 2 true  "admin" "secret" admin 10 none md2 md5 straight
`, port, script, dir)
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n"
	for name, body := range map[string]string{"lan.conf": lan, "sim.emu": emu} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "sim.emu"), "-s", filepath.Join(dir, "state"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	// ipmi_sim binds its port a moment after it starts.
	p, _ := New(providers.Settings{Username: "admin", Password: "secret"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.PowerState(ctx, providers.Machine{Candidates: []string{addr}})
		cancel()
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("ipmi_sim did not answer on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func TestPowerCycleOnIPMISim(t *testing.T) {
	addr := startBMC(t)
	p, err := New(providers.Settings{Username: "admin", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	providertest.PowerCycle(t, p, providers.Machine{Candidates: []string{addr}, Source: "test"})
}

func TestErrors(t *testing.T) {
	addr := startBMC(t)
	t.Run("wrong password", func(t *testing.T) {
		p, _ := New(providers.Settings{Username: "admin", Password: "hunter2-wrong"})
		providertest.FailsWithin(t, 5*time.Second, "opening session", "hunter2-wrong", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, providers.Machine{Candidates: []string{addr}})
			return err
		})
	})
	t.Run("unreachable BMC", func(t *testing.T) {
		p, _ := New(providers.Settings{Username: "admin", Password: "secret"})
		silent := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
		providertest.FailsWithin(t, 2*time.Second, silent, "", func(ctx context.Context) error {
			return p.PowerOff(ctx, providers.Machine{Candidates: []string{silent}}, providers.OffHard)
		})
	})
	t.Run("bad cipher suite option", func(t *testing.T) {
		if _, err := New(providers.Settings{Username: "admin", Options: map[string]string{"cipherSuite": "AES"}}); err == nil {
			t.Fatal("want an error for a cipher suite that is not a number")
		}
	})
}
