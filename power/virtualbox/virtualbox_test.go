package virtualbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/power"
	"github.com/nodecycle/nodecycle/test/framework/powertest"
)

const vmUUID = "8b5d0a0e-2b0f-4c59-9a4e-6c1e0f3f6a11"

// standIn points the provider at testdata/VBoxManage with one running VM,
// worker-1.
func standIn(t testing.TB) power.Provider {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("VBOX_STANDIN_DIR", dir)
	for name, body := range map[string]string{vmUUID + ".name": "worker-1", vmUUID + ".state": "running"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testdata, _ := filepath.Abs("testdata")
	t.Setenv("PATH", testdata+string(os.PathListSeparator)+os.Getenv("PATH"))
	p, err := New(power.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPowerCycle(t *testing.T) {
	p := standIn(t)
	m := power.Machine{Candidates: []string{vmUUID}, Source: "test"}
	powertest.PowerCycle(t, p, m)
	// Soft off: the ACPI power button, then the guest powers off.
	if err := p.PowerOff(context.Background(), m, power.OffSoft); err != nil {
		t.Fatal(err)
	}
	powertest.Wait(t, p, m, power.PowerOff)
	calls, _ := os.ReadFile(filepath.Join(os.Getenv("VBOX_STANDIN_DIR"), "calls.log"))
	for _, want := range []string{"controlvm " + vmUUID + " poweroff", "startvm " + vmUUID + " --type headless", "controlvm " + vmUUID + " acpipowerbutton"} {
		if !strings.Contains(string(calls), want) {
			t.Errorf("VBoxManage was not called with %q; calls:\n%s", want, calls)
		}
	}
}

func TestByName(t *testing.T) {
	p := standIn(t)
	powertest.Expect(t, p, power.Machine{Candidates: []string{"worker-1"}}, power.PowerOn)
}

func TestErrors(t *testing.T) {
	p := standIn(t)
	powertest.FailsWithin(t, 5*time.Second, "no VM matches nosuchvm", "", func(ctx context.Context) error {
		_, err := p.PowerState(ctx, power.Machine{Candidates: []string{"nosuchvm"}})
		return err
	})
	// A policy names no program for the manager to run.
	if _, err := New(power.Settings{Endpoint: "/tmp/evil"}); err == nil || !strings.Contains(err.Error(), "virtualbox takes no endpoint") {
		t.Fatalf("want the endpoint refused, got %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := New(power.Settings{}); err == nil || !strings.Contains(err.Error(), "VBoxManage not found on the manager's PATH") {
		t.Fatalf("want a clear error for a missing VBoxManage, got %v", err)
	}
}

func BenchmarkPowerCycle(b *testing.B) {
	powertest.BenchmarkCycle(b, standIn(b), power.Machine{Candidates: []string{vmUUID}})
}

func TestPowerCycleByReset(t *testing.T) {
	p := standIn(t)
	powertest.Cycle(t, p, power.Machine{Candidates: []string{vmUUID}})
	resets, err := os.ReadFile(filepath.Join(os.Getenv("VBOX_STANDIN_DIR"), vmUUID+".resets"))
	if err != nil || strings.TrimSpace(string(resets)) != "1" {
		t.Fatalf("controlvm reset ran %q times (%v), want 1", resets, err)
	}
}
