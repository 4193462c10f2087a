// Package power is the out-of-band power control of the machine behind a
// Node: one small interface, implemented by one package per platform
// (vsphere, ipmi, redfish, libvirt, virtualbox) and found through a Registry.
package power

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// PowerState is the power state of a machine.
type PowerState string

// Power states.
const (
	PowerOn      PowerState = "On"
	PowerOff     PowerState = "Off"
	PowerUnknown PowerState = "Unknown"
)

// OffMode says how to power a machine off.
type OffMode string

// Off modes.
const (
	// OffSoft asks the operating system to shut down (ACPI power button,
	// guest shutdown through VMware Tools, IPMI soft shutdown).
	OffSoft OffMode = "Soft"
	// OffHard cuts the power.
	OffHard OffMode = "Hard"
)

// Machine names the machine behind a Node for one provider.
type Machine struct {
	// Candidates are the identifiers to try, in order: a VM's BIOS UUID in
	// raw and byte-swapped form, say, or a BMC address. The provider uses
	// the first that matches exactly one machine.
	Candidates []string
	// Source says where the identifiers came from, for messages.
	Source string
}

func (m Machine) String() string {
	return fmt.Sprintf("%s (from %s)", strings.Join(m.Candidates, " or "), m.Source)
}

// Provider controls the power of machines. Every call is idempotent (off
// when already off succeeds) and returns when the context ends.
type Provider interface {
	PowerState(ctx context.Context, m Machine) (PowerState, error)
	PowerOn(ctx context.Context, m Machine) error
	PowerOff(ctx context.Context, m Machine, mode OffMode) error
}

// Cycler is implemented by providers whose platform has a one-call reset
// or power cycle (IPMI chassis power cycle, vSphere reset, Redfish
// PowerCycle/ForceRestart, libvirt reset, VirtualBox reset). The
// power-cycle strategy does not use it: it powers off and on separately, so
// that "off" is seen, and bounded, on its own.
type Cycler interface {
	PowerCycle(ctx context.Context, m Machine) error
}

// Settings configure a provider: where its endpoint is and how to log in.
// Credentials come from a Secret; they never appear in errors or logs.
type Settings struct {
	// Endpoint is the vCenter URL, the libvirt socket or address, the path
	// of VBoxManage; for BMCs (IPMI, Redfish) it is empty and each Machine
	// names its own BMC.
	Endpoint           string
	Username, Password string
	InsecureSkipVerify bool
	// CABundle is PEM: the authorities TLS certificates are verified with,
	// instead of the system roots.
	CABundle string
	// Options are provider-specific settings (cipherSuite for IPMI, uri
	// for libvirt).
	Options map[string]string
	// Machines are the patterns of the machines the credentials may be
	// used for (the credentials Secret's key machines); empty: any.
	Machines []string
}

// Factory builds a provider from its settings.
type Factory func(Settings) (Provider, error)

// Registry maps provider names to factories. A new provider is one package
// and one Register call.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// Register adds a provider.
func (r *Registry) Register(name string, f Factory) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.factories == nil {
		r.factories = map[string]Factory{}
	}
	r.factories[name] = f
}

// Names lists the registered providers, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var names []string
	for n := range r.factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrUnknownProvider is returned for a name no provider registered.
var ErrUnknownProvider = errors.New("unknown provider")

// New builds the named provider.
func (r *Registry) New(name string, s Settings) (Provider, error) {
	r.mu.RLock()
	f, ok := r.factories[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownProvider, name, strings.Join(r.Names(), ", "))
	}
	p, err := f(s)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", name, err)
	}
	return p, nil
}

// TLSConfig is the client TLS configuration of s: its CA bundle as the
// roots when it has one, no verification only when asked for.
func (s Settings) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: s.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // an explicit setting of the policy
	if s.CABundle != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(s.CABundle)) {
			return nil, errors.New("caBundle holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
