// Package libvirt controls the power of libvirt domains (KVM/QEMU hosts) over libvirt's RPC protocol.
package libvirt

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/nodecycle/nodecycle/power"
)

// Name is the provider's name in NodeCyclePolicy.
const Name = "libvirt"

// Provider talks to one libvirt daemon over one connection, opened on
// first use and opened again after an error. (A connection is also the
// scope of some drivers' state, the test driver's among them.)
type Provider struct {
	endpoint string
	dial     func(timeout time.Duration) socket.Dialer
	uri      string

	mu   sync.Mutex
	conn *golibvirt.Libvirt
}

// New builds the provider. Endpoint is unix:///run/libvirt/libvirt-sock
// (the default) or tcp://host:16509; option uri is the libvirt connection
// URI (default qemu:///system). Access is the socket's: libvirt's own
// authentication (polkit, SASL) is not used.
func New(s power.Settings) (power.Provider, error) {
	ep := s.Endpoint
	if ep == "" {
		ep = "unix:///run/libvirt/libvirt-sock"
	}
	u, err := url.Parse(ep)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", ep, err)
	}
	p := &Provider{endpoint: ep, uri: "qemu:///system"}
	if v := s.Options["uri"]; v != "" {
		p.uri = v
	}
	switch u.Scheme {
	case "unix":
		p.dial = func(t time.Duration) socket.Dialer {
			return dialers.NewLocal(dialers.WithSocket(u.Path), dialers.WithLocalTimeout(t))
		}
	case "tcp":
		p.dial = func(t time.Duration) socket.Dialer { return dialers.NewRemote(u.Host, dialers.WithRemoteTimeout(t)) }
	default:
		return nil, fmt.Errorf("endpoint %q: scheme must be unix or tcp", ep)
	}
	return p, nil
}

func (p *Provider) String() string { return "libvirt " + p.endpoint }

// with finds the domain and runs do, one call at a time. go-libvirt calls
// do not take a context, so a context that ends closes the connection
// under them.
func (p *Provider) with(ctx context.Context, m power.Machine, do func(*golibvirt.Libvirt, golibvirt.Domain) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	l := p.conn
	fresh := l == nil || !l.IsConnected()
	if fresh {
		l = golibvirt.NewWithDialer(p.dial(timeout))
	}
	done := make(chan error, 1)
	go func() {
		if fresh {
			if err := l.ConnectToURI(golibvirt.ConnectURI(p.uri)); err != nil {
				done <- fmt.Errorf("%s: connecting to %s: %w", p, p.uri, err)
				return
			}
		}
		dom, _, err := power.Exactly(m, "domain", func(id string) ([]golibvirt.Domain, error) {
			if uuid, ok := parseUUID(id); ok {
				if d, err := l.DomainLookupByUUID(uuid); err == nil {
					return []golibvirt.Domain{d}, nil
				}
			}
			if d, err := l.DomainLookupByName(id); err == nil {
				return []golibvirt.Domain{d}, nil
			}
			return nil, nil
		})
		if err != nil {
			done <- fmt.Errorf("%s: %w", p, err)
			return
		}
		done <- do(l, dom)
	}()
	select {
	case err := <-done:
		if err != nil {
			_ = l.Disconnect()
			p.conn = nil
			return err
		}
		p.conn = l
		return nil
	case <-ctx.Done():
		_ = l.Disconnect()
		p.conn = nil
		return fmt.Errorf("%s: %w", p, ctx.Err())
	}
}

func parseUUID(s string) (golibvirt.UUID, bool) {
	var u golibvirt.UUID
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != len(u) {
		return u, false
	}
	copy(u[:], b)
	return u, true
}

func state(l *golibvirt.Libvirt, d golibvirt.Domain) (power.PowerState, error) {
	s, _, err := l.DomainGetState(d, 0)
	if err != nil {
		return power.PowerUnknown, err
	}
	switch golibvirt.DomainState(s) {
	case golibvirt.DomainShutoff, golibvirt.DomainCrashed:
		return power.PowerOff, nil
	case golibvirt.DomainRunning, golibvirt.DomainBlocked, golibvirt.DomainPaused, golibvirt.DomainShutdown, golibvirt.DomainPmsuspended:
		return power.PowerOn, nil
	}
	return power.PowerUnknown, nil
}

// PowerState implements power.Provider.
func (p *Provider) PowerState(ctx context.Context, m power.Machine) (power.PowerState, error) {
	s := power.PowerUnknown
	err := p.with(ctx, m, func(l *golibvirt.Libvirt, d golibvirt.Domain) (err error) {
		if s, err = state(l, d); err != nil {
			return fmt.Errorf("%s: domain %s state: %w", p, d.Name, err)
		}
		return nil
	})
	return s, err
}

// PowerOn implements power.Provider (virsh start).
func (p *Provider) PowerOn(ctx context.Context, m power.Machine) error {
	return p.with(ctx, m, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		if s, err := state(l, d); err == nil && s == power.PowerOn {
			return nil
		}
		if err := l.DomainCreate(d); err != nil {
			return fmt.Errorf("%s: starting domain %s: %w", p, d.Name, err)
		}
		return nil
	})
}

// PowerOff implements power.Provider: soft is virsh shutdown (ACPI),
// hard is virsh destroy.
func (p *Provider) PowerOff(ctx context.Context, m power.Machine, mode power.OffMode) error {
	return p.with(ctx, m, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		if s, err := state(l, d); err == nil && s == power.PowerOff {
			return nil
		}
		op, verb := l.DomainDestroy, "destroying"
		if mode == power.OffSoft {
			op, verb = l.DomainShutdown, "shutting down"
		}
		if err := op(d); err != nil {
			return fmt.Errorf("%s: %s domain %s: %w", p, verb, d.Name, err)
		}
		return nil
	})
}

// Close ends the provider's connection; a later call opens a new one.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil
	}
	err := p.conn.Disconnect()
	p.conn = nil
	return err
}

// PowerCycle implements power.Cycler (virsh reset). A domain that is off
// is started.
func (p *Provider) PowerCycle(ctx context.Context, m power.Machine) error {
	return p.with(ctx, m, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		if s, err := state(l, d); err == nil && s == power.PowerOff {
			if err := l.DomainCreate(d); err != nil {
				return fmt.Errorf("%s: starting domain %s: %w", p, d.Name, err)
			}
			return nil
		}
		if err := l.DomainReset(d, 0); err != nil {
			return fmt.Errorf("%s: resetting domain %s: %w", p, d.Name, err)
		}
		return nil
	})
}

var _ power.Cycler = (*Provider)(nil)
