package vsphere

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/providers"
	"github.com/nodecycle/nodecycle/providers/providertest"
	"github.com/nodecycle/nodecycle/test/peers"
)

// startVCenter runs govmomi's vCenter simulator and returns its endpoint,
// credentials and the BIOS UUID of a running VM.
func startVCenter(t *testing.T) (endpoint, user, pass, uuid string) {
	t.Helper()
	v, err := peers.StartVCenter()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	return v.Endpoint, v.Username, v.Password, v.PoweredOnVMUUIDs()[0]
}

func TestPowerCycleOnSimulator(t *testing.T) {
	ep, user, pass, uuid := startVCenter(t)
	p, err := New(providers.Settings{Endpoint: ep, Username: user, Password: pass, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	providertest.PowerCycle(t, p, providers.Machine{Candidates: []string{uuid}, Source: "test"})
}

func TestFindsVMByByteSwappedUUID(t *testing.T) {
	ep, user, pass, uuid := startVCenter(t)
	p, _ := New(providers.Settings{Endpoint: ep, Username: user, Password: pass, InsecureSkipVerify: true})
	swapped := providers.Machine{Candidates: []string{"00000000-0000-0000-0000-000000000000", uuid}, Source: "test"}
	providertest.Expect(t, p, swapped, providers.PowerOn)
}

func TestErrors(t *testing.T) {
	ep, user, pass, _ := startVCenter(t)
	t.Run("wrong password", func(t *testing.T) {
		p, _ := New(providers.Settings{Endpoint: ep, Username: user, Password: "not-" + pass + "-secret", InsecureSkipVerify: true})
		m := providers.Machine{Candidates: []string{"x"}}
		providertest.FailsWithin(t, 10*time.Second, "login", "not-"+pass+"-secret", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, m)
			return err
		})
	})
	t.Run("unknown VM", func(t *testing.T) {
		p, _ := New(providers.Settings{Endpoint: ep, Username: user, Password: pass, InsecureSkipVerify: true})
		m := providers.Machine{Candidates: []string{"4c4c4544-0000-0000-0000-000000000000"}, Source: "test"}
		providertest.FailsWithin(t, 10*time.Second, "no VM matches 4c4c4544-0000-0000-0000-000000000000", "", func(ctx context.Context) error {
			return p.PowerOff(ctx, m, providers.OffHard)
		})
	})
	t.Run("unreachable vCenter", func(t *testing.T) {
		p, _ := New(providers.Settings{Endpoint: "https://" + blackhole(t) + "/sdk", Username: "u", Password: "p"})
		providertest.FailsWithin(t, 2*time.Second, "vSphere", "", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, providers.Machine{Candidates: []string{"x"}})
			return err
		})
	})
	t.Run("bad endpoint", func(t *testing.T) {
		if _, err := New(providers.Settings{Endpoint: "vcenter", Username: "u"}); err == nil {
			t.Fatal("want an error for an endpoint that is not a URL")
		}
	})
}

// blackhole is an address that accepts TCP connections and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return l.Addr().String()
}

func BenchmarkPowerCycle(b *testing.B) {
	v, err := peers.StartVCenter()
	if err != nil {
		b.Fatal(err)
	}
	defer v.Stop()
	p, _ := New(providers.Settings{Endpoint: v.Endpoint, Username: v.Username, Password: v.Password, InsecureSkipVerify: true})
	providertest.BenchmarkCycle(b, p, providers.Machine{Candidates: []string{v.PoweredOnVMUUIDs()[0]}})
}

func TestPowerCycleByReset(t *testing.T) {
	ep, user, pass, uuid := startVCenter(t)
	p, _ := New(providers.Settings{Endpoint: ep, Username: user, Password: pass, InsecureSkipVerify: true})
	providertest.Cycle(t, p, providers.Machine{Candidates: []string{uuid}})
}
