package redfish

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/power"
	"github.com/nodecycle/nodecycle/test/framework/powertest"
)

// bmc is a Redfish service as DSP0266 describes it, reduced to what power
// control uses: the service root (readable without authentication), the
// Systems collection, one ComputerSystem and its Reset action, behind HTTP
// basic authentication.
type bmc struct {
	mu       sync.Mutex
	power    string
	allowed  []string
	user, pw string
	cycles   int
}

func (b *bmc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	if path == "/redfish/v1" || path == "/redfish" {
		writeJSON(w, map[string]any{
			"@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
			"Id": "RootService", "Name": "Root Service", "RedfishVersion": "1.6.0",
			"Systems": map[string]string{"@odata.id": "/redfish/v1/Systems"},
		})
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != b.user || p != b.pw {
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]any{"error": map[string]any{"code": "Base.1.0.GeneralError", "message": "authentication failed"}})
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case path == "/redfish/v1/Systems" && r.Method == http.MethodGet:
		writeJSON(w, map[string]any{
			"@odata.id": "/redfish/v1/Systems", "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
			"Members": []map[string]string{{"@odata.id": "/redfish/v1/Systems/1"}}, "Members@odata.count": 1,
		})
	case path == "/redfish/v1/Systems/1" && r.Method == http.MethodGet:
		writeJSON(w, map[string]any{
			"@odata.id": "/redfish/v1/Systems/1", "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
			"Id": "1", "Name": "node", "PowerState": b.power,
			"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
				"target":                            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
				"ResetType@Redfish.AllowableValues": b.allowed,
			}},
		})
	case path == "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset" && r.Method == http.MethodPost:
		var body struct{ ResetType string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !contains(b.allowed, body.ResetType) {
			w.WriteHeader(http.StatusBadRequest)
			writeJSON(w, map[string]any{"error": map[string]any{"code": "Base.1.0.ActionParameterNotSupported"}})
			return
		}
		switch body.ResetType {
		case "On", "ForceOn":
			b.power = "On"
		case "ForceOff":
			b.power = "Off"
		case "PowerCycle", "ForceRestart":
			b.cycles++
		case "GracefulShutdown", "PushPowerButton":
			// The operating system takes a moment to shut down.
			b.power = "PoweringOff"
			time.AfterFunc(200*time.Millisecond, func() { b.mu.Lock(); b.power = "Off"; b.mu.Unlock() })
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func startBMC(t *testing.T) (string, *bmc) {
	t.Helper()
	b := &bmc{power: "On", allowed: []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart"}, user: "root", pw: "calvin"}
	srv := httptest.NewTLSServer(b)
	t.Cleanup(srv.Close)
	return srv.URL, b
}

func TestPowerCycle(t *testing.T) {
	addr, _ := startBMC(t)
	p, err := New(power.Settings{Username: "root", Password: "calvin", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	m := power.Machine{Candidates: []string{addr}, Source: "test"}
	powertest.PowerCycle(t, p, m)

	// Soft off goes through PoweringOff to Off.
	ctx := context.Background()
	if err := p.PowerOff(ctx, m, power.OffSoft); err != nil {
		t.Fatal(err)
	}
	powertest.Wait(t, p, m, power.PowerOff)
}

func TestErrors(t *testing.T) {
	addr, b := startBMC(t)
	m := power.Machine{Candidates: []string{addr}}
	t.Run("wrong password", func(t *testing.T) {
		p, _ := New(power.Settings{Username: "root", Password: "wrong-calvin", InsecureSkipVerify: true})
		powertest.FailsWithin(t, 5*time.Second, "wrong credentials", "wrong-calvin", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, m)
			return err
		})
	})
	t.Run("reset type not advertised", func(t *testing.T) {
		b.mu.Lock()
		b.allowed = []string{"On", "GracefulShutdown"}
		b.mu.Unlock()
		p, _ := New(power.Settings{Username: "root", Password: "calvin", InsecureSkipVerify: true})
		powertest.FailsWithin(t, 5*time.Second, "supports none of the reset types [ForceOff]", "", func(ctx context.Context) error {
			return p.PowerOff(ctx, m, power.OffHard)
		})
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		p, _ := New(power.Settings{Username: "root", Password: "calvin"})
		powertest.FailsWithin(t, 5*time.Second, "certificate", "", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, m)
			return err
		})
	})
	t.Run("plain http", func(t *testing.T) {
		var asked atomic.Int32
		plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { asked.Add(1) }))
		defer plain.Close()
		p, _ := New(power.Settings{Username: "root", Password: "calvin"})
		powertest.FailsWithin(t, 2*time.Second, "only https is allowed", "calvin", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, power.Machine{Candidates: []string{plain.URL}})
			return err
		})
		if n := asked.Load(); n != 0 {
			t.Errorf("%d requests sent the credentials over plain http", n)
		}
	})
	t.Run("unreachable BMC", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // accepts, never answers
		p, _ := New(power.Settings{Username: "root", Password: "calvin", InsecureSkipVerify: true})
		powertest.FailsWithin(t, 2*time.Second, "Redfish BMC", "", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, power.Machine{Candidates: []string{l.Addr().String()}})
			return err
		})
	})
}

func BenchmarkPowerCycle(b *testing.B) {
	bm := &bmc{power: "On", allowed: []string{"On", "ForceOff", "GracefulShutdown"}, user: "root", pw: "calvin"}
	srv := httptest.NewTLSServer(bm)
	defer srv.Close()
	p, _ := New(power.Settings{Username: "root", Password: "calvin", InsecureSkipVerify: true})
	powertest.BenchmarkCycle(b, p, power.Machine{Candidates: []string{srv.URL}})
}

func TestPowerCycleByReset(t *testing.T) {
	addr, b := startBMC(t)
	b.mu.Lock()
	b.allowed = append(b.allowed, "PowerCycle")
	b.mu.Unlock()
	p, _ := New(power.Settings{Username: "root", Password: "calvin", InsecureSkipVerify: true})
	powertest.Cycle(t, p, power.Machine{Candidates: []string{addr}})
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cycles != 1 {
		t.Fatalf("%d PowerCycle resets, want 1", b.cycles)
	}
}

// Lower: a BMC with its own certificate is trusted through caBundle, not
// insecureSkipVerify; without either, the unknown certificate is refused
// before any credential is sent.
func TestVerifiesTheBMCWithTheCABundle(t *testing.T) {
	b := &bmc{power: "On", allowed: []string{"On", "ForceOff"}, user: "root", pw: "calvin"}
	srv := httptest.NewTLSServer(b)
	t.Cleanup(srv.Close)
	m := power.Machine{Candidates: []string{srv.URL}}
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	p, err := New(power.Settings{Username: "root", Password: "calvin", CABundle: ca})
	if err != nil {
		t.Fatal(err)
	}
	powertest.Expect(t, p, m, power.PowerOn)

	unverified, _ := New(power.Settings{Username: "root", Password: "calvin"})
	powertest.FailsWithin(t, 5*time.Second, "certificate", "calvin", func(ctx context.Context) error {
		_, err := unverified.PowerState(ctx, m)
		return err
	})
	wrong, _ := New(power.Settings{Username: "root", Password: "calvin", CABundle: powertest.UnrelatedCA(t)})
	powertest.FailsWithin(t, 5*time.Second, "certificate", "calvin", func(ctx context.Context) error {
		_, err := wrong.PowerState(ctx, m)
		return err
	})
	if _, err := New(power.Settings{Username: "root", Password: "calvin", CABundle: "not PEM"}); err == nil || !strings.Contains(err.Error(), "caBundle holds no PEM certificate") {
		t.Fatalf("a bad caBundle: %v", err)
	}
}
