// Package vsphere controls the power of vSphere VMs through vCenter or ESXi, found by BIOS UUID or name.
package vsphere

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"regexp"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/nodecycle/nodecycle/power"
)

// Name is the provider's name in NodeCyclePolicy.
const Name = "vsphere"

// Provider talks to one vCenter or ESXi host.
type Provider struct {
	url *url.URL
	tls *tls.Config
}

// New builds the provider. Endpoint is the SDK URL (https://vcenter/sdk).
func New(s power.Settings) (power.Provider, error) {
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q is not a URL such as https://vcenter.example.com/sdk", s.Endpoint)
	}
	if u.Scheme != "https" {
		// The login carries the credentials.
		return nil, fmt.Errorf("endpoint %q: only https is allowed, since the login carries the credentials", s.Endpoint)
	}
	if s.Username == "" {
		return nil, errors.New("credentials have no username")
	}
	u.User = url.UserPassword(s.Username, s.Password)
	cfg, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	return &Provider{url: u, tls: cfg}, nil
}

func (p *Provider) String() string { return "vSphere " + p.url.Host }

// session logs in for one operation; a manager acts on one machine at a
// time per cluster, so a session per operation costs little and leaves no
// state behind.
func (p *Provider) session(ctx context.Context, m power.Machine, do func(*object.VirtualMachine) error) error {
	c, err := p.login(ctx)
	if err != nil {
		return fmt.Errorf("%s: login: %w", p, redact(err, p.url))
	}
	defer func() { _ = c.Logout(context.WithoutCancel(ctx)) }()
	si := object.NewSearchIndex(c.Client)
	byName := find.NewFinder(c.Client, true)
	vm, _, err := power.Exactly(m, "VM", func(id string) ([]*object.VirtualMachine, error) {
		refs, findErr := si.FindAllByUuid(ctx, nil, id, true, new(bool))
		if findErr != nil {
			return nil, fmt.Errorf("%s: searching VM by BIOS UUID %s: %w", p, id, findErr)
		}
		var vms []*object.VirtualMachine
		for _, r := range refs {
			vms = append(vms, object.NewVirtualMachine(c.Client, r.Reference()))
		}
		if len(vms) == 0 {
			if found, listErr := byName.VirtualMachineList(ctx, "*/"+id); listErr == nil {
				vms = found
			}
		}
		return vms, nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return do(vm)
}

// PowerState implements power.Provider.
func (p *Provider) PowerState(ctx context.Context, m power.Machine) (power.PowerState, error) {
	state := power.PowerUnknown
	err := p.session(ctx, m, func(vm *object.VirtualMachine) error {
		s, err := vm.PowerState(ctx)
		if err != nil {
			return fmt.Errorf("%s: reading power state: %w", p, err)
		}
		state = convert(s)
		return nil
	})
	return state, err
}

func convert(s types.VirtualMachinePowerState) power.PowerState {
	switch s {
	case types.VirtualMachinePowerStatePoweredOn:
		return power.PowerOn
	case types.VirtualMachinePowerStatePoweredOff, types.VirtualMachinePowerStateSuspended:
		return power.PowerOff
	}
	return power.PowerUnknown
}

// PowerOn implements power.Provider.
func (p *Provider) PowerOn(ctx context.Context, m power.Machine) error {
	return p.session(ctx, m, func(vm *object.VirtualMachine) error {
		if s, err := vm.PowerState(ctx); err == nil && s == types.VirtualMachinePowerStatePoweredOn {
			return nil
		}
		task, err := vm.PowerOn(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s: power on: %w", p, err)
		}
		return nil
	})
}

// PowerOff implements power.Provider. Soft is a guest shutdown, which
// needs VMware Tools running in the guest.
func (p *Provider) PowerOff(ctx context.Context, m power.Machine, mode power.OffMode) error {
	return p.session(ctx, m, func(vm *object.VirtualMachine) error {
		s, err := vm.PowerState(ctx)
		if err != nil {
			return fmt.Errorf("%s: reading power state: %w", p, err)
		}
		if s == types.VirtualMachinePowerStatePoweredOff {
			return nil
		}
		if mode == power.OffSoft {
			if err = vm.ShutdownGuest(ctx); err != nil {
				return fmt.Errorf("%s: guest shutdown (needs VMware Tools): %w", p, err)
			}
			return nil
		}
		task, err := vm.PowerOff(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s: power off: %w", p, err)
		}
		return nil
	})
}

// login opens a session, verifying the vCenter's certificate with the
// policy's CA bundle when it has one.
func (p *Provider) login(ctx context.Context) (*govmomi.Client, error) {
	sc := soap.NewClient(p.url, p.tls.InsecureSkipVerify)
	if p.tls.RootCAs != nil {
		sc.DefaultTransport().TLSClientConfig.RootCAs = p.tls.RootCAs
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, err
	}
	c := &govmomi.Client{Client: vc, SessionManager: session.NewManager(vc)}
	if err := c.Login(ctx, p.url.User); err != nil {
		return nil, err
	}
	return c, nil
}

// redact keeps the password out of an error that quotes it (a URL with
// its user info, a peer that echoes the request): every occurrence that
// stands alone, raw or URL-escaped, becomes xxxxx. Occurrences inside a
// longer word are left, so that a short password does not mangle the rest
// of the message ("https" stays "https" for the password "p").
func redact(err error, u *url.URL) error {
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return err
	}
	msg := err.Error()
	for _, form := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
		re := regexp.MustCompile(`(^|[^A-Za-z0-9])` + regexp.QuoteMeta(form) + `($|[^A-Za-z0-9])`)
		for re.MatchString(msg) { // overlapping matches ("p p") need more than one pass
			msg = re.ReplaceAllString(msg, "${1}xxxxx${2}")
		}
	}
	return errors.New(msg)
}

// PowerCycle implements power.Cycler (a VM reset). A VM that is off is
// powered on.
func (p *Provider) PowerCycle(ctx context.Context, m power.Machine) error {
	return p.session(ctx, m, func(vm *object.VirtualMachine) error {
		s, err := vm.PowerState(ctx)
		if err != nil {
			return fmt.Errorf("%s: reading power state: %w", p, err)
		}
		op, what := vm.Reset, "reset"
		if s != types.VirtualMachinePowerStatePoweredOn {
			op, what = vm.PowerOn, "power on"
		}
		task, err := op(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", p, what, err)
		}
		return nil
	})
}

var _ power.Cycler = (*Provider)(nil)
