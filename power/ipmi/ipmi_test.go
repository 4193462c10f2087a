package ipmi

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/power"
	"github.com/nodecycle/nodecycle/test/framework/peers"
	"github.com/nodecycle/nodecycle/test/framework/powertest"
)

// startBMC runs ipmi_sim on a loopback port.
func startBMC(t *testing.T) string {
	t.Helper()
	b, err := peers.StartBMC()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b.Addr
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
	p, err := New(power.Settings{Username: "admin", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	powertest.PowerCycle(t, p, power.Machine{Candidates: []string{addr}, Source: "test"})
}

func TestErrors(t *testing.T) {
	addr := startBMC(t)
	t.Run("wrong password", func(t *testing.T) {
		p, _ := New(power.Settings{Username: "admin", Password: "hunter2-wrong"})
		powertest.FailsWithin(t, 5*time.Second, "opening session", "hunter2-wrong", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, power.Machine{Candidates: []string{addr}})
			return err
		})
	})
	t.Run("unreachable BMC", func(t *testing.T) {
		p, _ := New(power.Settings{Username: "admin", Password: "secret"})
		silent := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
		powertest.FailsWithin(t, 2*time.Second, silent, "", func(ctx context.Context) error {
			return p.PowerOff(ctx, power.Machine{Candidates: []string{silent}}, power.OffHard)
		})
	})
	t.Run("bad cipher suite option", func(t *testing.T) {
		if _, err := New(power.Settings{Username: "admin", Options: map[string]string{"cipherSuite": "AES"}}); err == nil {
			t.Fatal("want an error for a cipher suite that is not a number")
		}
	})
	t.Run("cipher suites without authentication, integrity or confidentiality", func(t *testing.T) {
		for n := 0; n <= 17; n++ {
			_, err := New(power.Settings{Username: "admin", Options: map[string]string{"cipherSuite": strconv.Itoa(n)}})
			switch n {
			case 3, 8, 12, 17:
				if err != nil {
					t.Errorf("cipher suite %d: %v", n, err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), "is refused") {
					t.Errorf("cipher suite %d: error %v, want it refused", n, err)
				}
			}
		}
	})
}

func BenchmarkPowerCycle(b *testing.B) {
	bmc, err := peers.StartBMC()
	if err != nil {
		b.Fatal(err)
	}
	defer bmc.Stop()
	p, _ := New(power.Settings{Username: bmc.Username, Password: bmc.Password})
	powertest.BenchmarkCycle(b, p, power.Machine{Candidates: []string{bmc.Addr}})
}

func TestChassisPowerCycle(t *testing.T) {
	bmc, err := peers.StartBMC()
	if err != nil {
		t.Fatal(err)
	}
	defer bmc.Stop()
	p, _ := New(power.Settings{Username: bmc.Username, Password: bmc.Password})
	m := power.Machine{Candidates: []string{bmc.Addr}}
	powertest.Cycle(t, p, m)
	// The BMC saw the power go off and on for the cycle, and on for the power-on.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, boots, _ := bmc.Observe(context.Background())
		if boots == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("BMC counted %s power-ons, want 2", boots)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
