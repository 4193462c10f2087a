package vsphere

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/power"
	"github.com/nodecycle/nodecycle/test/framework/peers"
	"github.com/nodecycle/nodecycle/test/framework/powertest"
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
	p, err := New(power.Settings{Endpoint: ep, Username: user, Password: pass, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	powertest.PowerCycle(t, p, power.Machine{Candidates: []string{uuid}, Source: "test"})
}

func TestFindsVMByByteSwappedUUID(t *testing.T) {
	ep, user, pass, uuid := startVCenter(t)
	p, _ := New(power.Settings{Endpoint: ep, Username: user, Password: pass, InsecureSkipVerify: true})
	swapped := power.Machine{Candidates: []string{"00000000-0000-0000-0000-000000000000", uuid}, Source: "test"}
	powertest.Expect(t, p, swapped, power.PowerOn)
}

func TestErrors(t *testing.T) {
	ep, user, pass, _ := startVCenter(t)
	t.Run("wrong password", func(t *testing.T) {
		p, _ := New(power.Settings{Endpoint: ep, Username: user, Password: "not-" + pass + "-secret", InsecureSkipVerify: true})
		m := power.Machine{Candidates: []string{"x"}}
		powertest.FailsWithin(t, 10*time.Second, "login", "not-"+pass+"-secret", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, m)
			return err
		})
	})
	t.Run("unknown VM", func(t *testing.T) {
		p, _ := New(power.Settings{Endpoint: ep, Username: user, Password: pass, InsecureSkipVerify: true})
		m := power.Machine{Candidates: []string{"4c4c4544-0000-0000-0000-000000000000"}, Source: "test"}
		powertest.FailsWithin(t, 10*time.Second, "no VM matches 4c4c4544-0000-0000-0000-000000000000", "", func(ctx context.Context) error {
			return p.PowerOff(ctx, m, power.OffHard)
		})
	})
	t.Run("unreachable vCenter", func(t *testing.T) {
		p, _ := New(power.Settings{Endpoint: "https://" + blackhole(t) + "/sdk", Username: "u", Password: "p"})
		powertest.FailsWithin(t, 2*time.Second, "vSphere", "", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, power.Machine{Candidates: []string{"x"}})
			return err
		})
	})
	t.Run("bad endpoint", func(t *testing.T) {
		if _, err := New(power.Settings{Endpoint: "vcenter", Username: "u"}); err == nil {
			t.Fatal("want an error for an endpoint that is not a URL")
		}
	})
	// H5: credentials never in clear.
	t.Run("plain http", func(t *testing.T) {
		if _, err := New(power.Settings{Endpoint: "http://vcenter.example.com/sdk", Username: "u", Password: "p"}); err == nil || !strings.Contains(err.Error(), "only https") {
			t.Fatalf("want http refused, got %v", err)
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
	p, _ := New(power.Settings{Endpoint: v.Endpoint, Username: v.Username, Password: v.Password, InsecureSkipVerify: true})
	powertest.BenchmarkCycle(b, p, power.Machine{Candidates: []string{v.PoweredOnVMUUIDs()[0]}})
}

// A power cycle of a running VM is a reset: the simulator's boot time of
// the VM must change, not only its power state read "on" afterwards.
func TestPowerCycleByReset(t *testing.T) {
	v, err := peers.StartVCenter()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	uuid := v.PoweredOnVMUUIDs()[0]
	p, _ := New(power.Settings{Endpoint: v.Endpoint, Username: v.Username, Password: v.Password, InsecureSkipVerify: true})
	m := power.Machine{Candidates: []string{uuid}}
	boot := func() string {
		t.Helper()
		_, b, err := v.Observe(context.Background(), uuid)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := boot()
	if err := p.(power.Cycler).PowerCycle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	powertest.Wait(t, p, m, power.PowerOn)
	if after := boot(); after == before {
		t.Fatalf("the VM was not reset: boot time %s before and after", before)
	}
	powertest.Cycle(t, p, m)
}

// A peer whose error echoes what it was sent (here the Login request, with
// the password) must not put the password into nodecycle's messages; a
// short password must not mangle the rest of the message.
func TestRedactsACredentialThePeerEchoes(t *testing.T) {
	ep, user, _, _ := startVCenter(t)
	target, err := url.Parse(ep)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the simulator's own certificate
	echo := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte("<Login")) {
			r.Body = io.NopCloser(bytes.NewReader(body))
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusInternalServerError)
		var escaped bytes.Buffer
		_ = xml.EscapeText(&escaped, body)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>cannot parse %s</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>`, escaped.String())
	}))
	t.Cleanup(echo.Close)
	for _, password := range []string{"s3cr3t-Passw0rd", "p"} {
		p, _ := New(power.Settings{Endpoint: echo.URL + "/sdk", Username: user, Password: password, InsecureSkipVerify: true})
		powertest.FailsWithin(t, 10*time.Second, "login", ">"+password+"<", func(ctx context.Context) error {
			_, err := p.PowerState(ctx, power.Machine{Candidates: []string{"x"}})
			if err != nil && strings.Contains(err.Error(), "httxxxxx") {
				t.Errorf("the message was mangled: %v", err)
			}
			return err
		})
	}
}

// Lower: the vCenter's own certificate is trusted through caBundle, not
// insecureSkipVerify; without either it is refused before the login.
func TestVerifiesTheVCenterWithTheCABundle(t *testing.T) {
	v, err := peers.StartVCenter()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	m := power.Machine{Candidates: []string{v.PoweredOnVMUUIDs()[0]}}
	p, err := New(power.Settings{Endpoint: v.Endpoint, Username: v.Username, Password: v.Password, CABundle: v.CACert()})
	if err != nil {
		t.Fatal(err)
	}
	powertest.Expect(t, p, m, power.PowerOn)
	for _, bundle := range []string{"", powertest.UnrelatedCA(t)} {
		unverified, _ := New(power.Settings{Endpoint: v.Endpoint, Username: v.Username, Password: v.Password, CABundle: bundle})
		powertest.FailsWithin(t, 5*time.Second, "certificate", v.Password, func(ctx context.Context) error {
			_, err := unverified.PowerState(ctx, m)
			return err
		})
	}
}
