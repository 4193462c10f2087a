// Package redfish controls the power of a server through its BMC's Redfish service (ComputerSystem.Reset).
package redfish

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	"github.com/nodecycle/nodecycle/power"
)

// Name is the provider's name in NodeCyclePolicy.
const Name = "redfish"

// Provider talks to the Redfish service of the BMC each Machine names.
type Provider struct {
	username, password string
	tls                *tls.Config
}

// New builds the provider.
func New(s power.Settings) (power.Provider, error) {
	if s.Username == "" {
		return nil, errors.New("credentials have no username")
	}
	cfg, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	return &Provider{username: s.Username, password: s.Password, tls: cfg}, nil
}

func endpoint(m power.Machine) (string, error) {
	if len(m.Candidates) == 0 {
		return "", errors.New("Redfish: no BMC address")
	}
	a := m.Candidates[0]
	if !strings.Contains(a, "://") {
		a = "https://" + a
	}
	// Every request carries the credentials (basic auth): never in clear.
	if !strings.HasPrefix(a, "https://") {
		return "", fmt.Errorf("Redfish BMC address %q: only https is allowed, since every request carries the credentials", a)
	}
	return a, nil
}

// with connects to the BMC and finds its one ComputerSystem.
func (p *Provider) with(ctx context.Context, m power.Machine, do func(*schemas.ComputerSystem, string) error) error {
	ep, err := endpoint(m)
	if err != nil {
		return err
	}
	timeout := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	c, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint: ep, Username: p.username, Password: p.password, Insecure: p.tls.InsecureSkipVerify, BasicAuth: true,
		HTTPClient: &http.Client{Timeout: timeout, Transport: transport(p.tls)},
	})
	if err != nil {
		return fmt.Errorf("Redfish BMC %s: connecting: %w", ep, err)
	}
	defer c.Logout()
	systems, err := c.Service.Systems()
	if err != nil {
		return fmt.Errorf("Redfish BMC %s: listing systems (wrong credentials?): %w", ep, err)
	}
	if len(systems) != 1 {
		return fmt.Errorf("Redfish BMC %s: %d computer systems, want exactly one; refusing to guess", ep, len(systems))
	}
	return do(systems[0], ep)
}

func convert(s schemas.PowerState) power.PowerState {
	switch s {
	case schemas.OnPowerState, schemas.PoweringOffPowerState:
		return power.PowerOn
	case schemas.OffPowerState, schemas.PoweringOnPowerState:
		return power.PowerOff
	}
	return power.PowerUnknown
}

// PowerState implements power.Provider.
func (p *Provider) PowerState(ctx context.Context, m power.Machine) (power.PowerState, error) {
	s := power.PowerUnknown
	err := p.with(ctx, m, func(sys *schemas.ComputerSystem, _ string) error {
		s = convert(sys.PowerState)
		return nil
	})
	return s, err
}

// reset sends the first reset type of prefer that the system advertises.
func reset(sys *schemas.ComputerSystem, ep string, prefer ...schemas.ResetType) error {
	supported, err := sys.GetSupportedResetTypes()
	if err != nil {
		return fmt.Errorf("Redfish BMC %s: reading reset types: %w", ep, err)
	}
	choice := prefer[0]
	if len(supported) > 0 {
		choice = ""
		for _, want := range prefer {
			for _, s := range supported {
				if s == want && choice == "" {
					choice = want
				}
			}
		}
		if choice == "" {
			return fmt.Errorf("Redfish BMC %s: system %s supports none of the reset types %v (it supports %v)", ep, sys.ID, prefer, supported)
		}
	}
	if _, err := sys.Reset(choice); err != nil {
		return fmt.Errorf("Redfish BMC %s: reset %s: %w", ep, choice, err)
	}
	return nil
}

// PowerOn implements power.Provider.
func (p *Provider) PowerOn(ctx context.Context, m power.Machine) error {
	return p.with(ctx, m, func(sys *schemas.ComputerSystem, ep string) error {
		if convert(sys.PowerState) == power.PowerOn {
			return nil
		}
		return reset(sys, ep, schemas.OnResetType, schemas.ForceOnResetType, schemas.PushPowerButtonResetType)
	})
}

// PowerOff implements power.Provider.
func (p *Provider) PowerOff(ctx context.Context, m power.Machine, mode power.OffMode) error {
	return p.with(ctx, m, func(sys *schemas.ComputerSystem, ep string) error {
		if convert(sys.PowerState) == power.PowerOff {
			return nil
		}
		if mode == power.OffSoft {
			return reset(sys, ep, schemas.GracefulShutdownResetType, schemas.PushPowerButtonResetType)
		}
		return reset(sys, ep, schemas.ForceOffResetType)
	})
}

// PowerCycle implements power.Cycler with the first of PowerCycle and
// ForceRestart the system advertises. A system that is off is powered on.
func (p *Provider) PowerCycle(ctx context.Context, m power.Machine) error {
	return p.with(ctx, m, func(sys *schemas.ComputerSystem, ep string) error {
		if convert(sys.PowerState) == power.PowerOff {
			return reset(sys, ep, schemas.OnResetType, schemas.ForceOnResetType, schemas.PushPowerButtonResetType)
		}
		return reset(sys, ep, schemas.PowerCycleResetType, schemas.ForceRestartResetType)
	})
}

var _ power.Cycler = (*Provider)(nil)
