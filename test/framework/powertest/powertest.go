// Package powertest holds the behaviour every power provider must show against its peer.
package powertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/power"
)

// Timeouts of the conformance steps.
const (
	callTimeout = 20 * time.Second
	waitTimeout = 30 * time.Second
)

// PowerCycle drives m through off (hard), off again, on, on again, checking
// the state after each and that repeating a call is harmless.
func PowerCycle(t *testing.T, p power.Provider, m power.Machine) {
	t.Helper()
	Expect(t, p, m, power.PowerOn)
	call(t, "hard off", func(ctx context.Context) error { return p.PowerOff(ctx, m, power.OffHard) })
	Wait(t, p, m, power.PowerOff)
	call(t, "hard off when already off", func(ctx context.Context) error { return p.PowerOff(ctx, m, power.OffHard) })
	call(t, "soft off when already off", func(ctx context.Context) error { return p.PowerOff(ctx, m, power.OffSoft) })
	Expect(t, p, m, power.PowerOff)
	call(t, "on", func(ctx context.Context) error { return p.PowerOn(ctx, m) })
	Wait(t, p, m, power.PowerOn)
	call(t, "on when already on", func(ctx context.Context) error { return p.PowerOn(ctx, m) })
	Expect(t, p, m, power.PowerOn)
}

func call(t *testing.T, what string, f func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Expect checks the power state now.
func Expect(t *testing.T, p power.Provider, m power.Machine, want power.PowerState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	got, err := p.PowerState(ctx, m)
	if err != nil {
		t.Fatalf("power state: %v", err)
	}
	if got != want {
		t.Fatalf("power state %s, want %s", got, want)
	}
}

// Wait waits for the power state.
func Wait(t *testing.T, p power.Provider, m power.Machine, want power.PowerState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := power.WaitFor(ctx, p, m, want, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// FailsWithin checks that a call fails, within limit, with an error that
// names want and does not contain secret.
func FailsWithin(t *testing.T, limit time.Duration, want, secret string, f func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("call succeeded, want an error mentioning %q", want)
	}
	if took > limit+time.Second {
		t.Fatalf("call took %s, more than its deadline %s", took, limit)
	}
	if want != "" && !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not mention %q", err, want)
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Fatalf("error %q contains the secret", err)
	}
	t.Logf("failed as expected in %s: %v", took.Round(time.Millisecond), err)
}

// BenchmarkCycle measures one full power cycle (hard off, wait until off,
// on, wait until on) per iteration.
func BenchmarkCycle(b *testing.B, p power.Provider, m power.Machine) {
	b.Helper()
	ctx := context.Background()
	for b.Loop() {
		if err := p.PowerOff(ctx, m, power.OffHard); err != nil {
			b.Fatal(err)
		}
		if err := power.WaitFor(ctx, p, m, power.PowerOff, 20*time.Millisecond); err != nil {
			b.Fatal(err)
		}
		if err := p.PowerOn(ctx, m); err != nil {
			b.Fatal(err)
		}
		if err := power.WaitFor(ctx, p, m, power.PowerOn, 20*time.Millisecond); err != nil {
			b.Fatal(err)
		}
	}
}

// Cycle checks power.Cycler: a running machine is reset and runs again,
// a machine that is off is powered on.
func Cycle(t *testing.T, p power.Provider, m power.Machine) {
	t.Helper()
	c, ok := p.(power.Cycler)
	if !ok {
		t.Fatalf("%T does not implement power.Cycler", p)
	}
	Expect(t, p, m, power.PowerOn)
	call(t, "power cycle when on", func(ctx context.Context) error { return c.PowerCycle(ctx, m) })
	Wait(t, p, m, power.PowerOn)
	call(t, "hard off", func(ctx context.Context) error { return p.PowerOff(ctx, m, power.OffHard) })
	Wait(t, p, m, power.PowerOff)
	call(t, "power cycle when off", func(ctx context.Context) error { return c.PowerCycle(ctx, m) })
	Wait(t, p, m, power.PowerOn)
}

// UnrelatedCA is the PEM of a freshly made self-signed certificate that
// signed nothing: a caBundle that must not verify any peer.
func UnrelatedCA(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unrelated"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
