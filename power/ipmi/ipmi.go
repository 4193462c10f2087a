// Package ipmi controls chassis power through a BMC over IPMI 2.0 (RMCP+, "lanplus").
package ipmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/nodecycle/nodecycle/power"
)

// Name is the provider's name in NodeCyclePolicy.
const Name = "ipmi"

// Provider talks to the BMC each Machine names (host or host:port).
type Provider struct {
	username, password string
	cipherSuite        types.CipherSuiteID
}

// protected are the RMCP+ cipher suites with authentication, integrity and
// confidentiality (AES-CBC-128): 3 (SHA1), 8 and 12 (MD5), 17 (SHA256).
var protected = map[int]bool{3: true, 8: true, 12: true, 17: true}

// New builds the provider. Option cipherSuite (default 3:
// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) pins the RMCP+ cipher suite;
// negotiating one costs each connection several seconds on many BMCs.
func New(s power.Settings) (power.Provider, error) {
	if s.Username == "" {
		return nil, errors.New("credentials have no username")
	}
	cs := 3
	if v, ok := s.Options["cipherSuite"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 17 {
			return nil, fmt.Errorf("option cipherSuite %q is not an IPMI cipher suite number (0-17)", v)
		}
		if !protected[n] {
			// Suite 0 has no authentication: anyone on the BMC network
			// could act as the BMC. The others lack integrity or
			// confidentiality: the session (and the power command) can be
			// altered or read on the way.
			return nil, fmt.Errorf("option cipherSuite %d is refused: it has no authentication, integrity or confidentiality; use 3 (the default), 8, 12 or 17", n)
		}
		cs = n
	}
	return &Provider{username: s.Username, password: s.Password, cipherSuite: types.CipherSuiteID(cs)}, nil
}

// connect opens a session with the machine's BMC; its deadline is the
// context's.
func (p *Provider) connect(ctx context.Context, m power.Machine) (*client.Client, string, error) {
	if len(m.Candidates) == 0 {
		return nil, "", errors.New("IPMI: no BMC address")
	}
	addr := m.Candidates[0]
	host, port := addr, 623
	if h, ps, err := net.SplitHostPort(addr); err == nil {
		n, err := strconv.Atoi(ps)
		if err != nil {
			return nil, addr, fmt.Errorf("IPMI BMC %s: bad port", addr)
		}
		host, port = h, n
	}
	c, err := client.NewClient(host, port, p.username, p.password)
	if err != nil {
		return nil, addr, fmt.Errorf("IPMI BMC %s: %w", addr, err)
	}
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(min(time.Until(d)/2, timeout), 100*time.Millisecond)
	}
	c = c.WithCipherSuiteID(p.cipherSuite).WithTimeout(timeout).WithRetry(1)
	if err := c.Connect(ctx); err != nil {
		return nil, addr, fmt.Errorf("IPMI BMC %s: opening session (wrong credentials, cipher suite %d not supported, or BMC unreachable): %w", addr, p.cipherSuite, err)
	}
	return c, addr, nil
}

func (p *Provider) with(ctx context.Context, m power.Machine, do func(*client.Client, string) error) error {
	c, addr, err := p.connect(ctx, m)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close(context.WithoutCancel(ctx)) }()
	return do(c, addr)
}

func state(ctx context.Context, c *client.Client, addr string) (power.PowerState, error) {
	res, err := c.GetChassisStatus(ctx)
	if err != nil {
		return power.PowerUnknown, fmt.Errorf("IPMI BMC %s: chassis status: %w", addr, err)
	}
	if res.PowerIsOn {
		return power.PowerOn, nil
	}
	return power.PowerOff, nil
}

// PowerState implements power.Provider.
func (p *Provider) PowerState(ctx context.Context, m power.Machine) (power.PowerState, error) {
	s := power.PowerUnknown
	err := p.with(ctx, m, func(c *client.Client, addr string) (err error) {
		s, err = state(ctx, c, addr)
		return err
	})
	return s, err
}

func (p *Provider) control(ctx context.Context, m power.Machine, skipIf power.PowerState, ctl chassis.ChassisControl, what string) error {
	return p.with(ctx, m, func(c *client.Client, addr string) error {
		s, err := state(ctx, c, addr)
		if err != nil {
			return err
		}
		if s == skipIf {
			return nil
		}
		if _, err := c.ChassisControl(ctx, ctl); err != nil {
			return fmt.Errorf("IPMI BMC %s: chassis %s: %w", addr, what, err)
		}
		return nil
	})
}

// PowerOn implements power.Provider.
func (p *Provider) PowerOn(ctx context.Context, m power.Machine) error {
	return p.control(ctx, m, power.PowerOn, chassis.ChassisControlPowerUp, "power on")
}

// PowerOff implements power.Provider. Soft is the IPMI soft shutdown
// (an ACPI power button press the operating system handles).
func (p *Provider) PowerOff(ctx context.Context, m power.Machine, mode power.OffMode) error {
	if mode == power.OffSoft {
		return p.control(ctx, m, power.PowerOff, chassis.ChassisControlSoftShutdown, "soft shutdown")
	}
	return p.control(ctx, m, power.PowerOff, chassis.ChassisControlPowerDown, "power off")
}

// PowerCycle implements power.Cycler (chassis power cycle; the BMC
// turns the power off, then on about a second later). A machine that is off
// is powered on.
func (p *Provider) PowerCycle(ctx context.Context, m power.Machine) error {
	return p.with(ctx, m, func(c *client.Client, addr string) error {
		s, err := state(ctx, c, addr)
		if err != nil {
			return err
		}
		ctl, what := chassis.ChassisControlPowerCycle, "power cycle"
		if s == power.PowerOff {
			ctl, what = chassis.ChassisControlPowerUp, "power on"
		}
		if _, err := c.ChassisControl(ctx, ctl); err != nil {
			return fmt.Errorf("IPMI BMC %s: chassis %s: %w", addr, what, err)
		}
		return nil
	})
}

var _ power.Cycler = (*Provider)(nil)
