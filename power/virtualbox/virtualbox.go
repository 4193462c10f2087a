// Package virtualbox controls the power of VirtualBox VMs with VBoxManage, for a manager that runs on the VirtualBox host (a Vagrant + kubeadm lab).
package virtualbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/nodecycle/nodecycle/power"
)

// Name is the provider's name in NodeCyclePolicy.
const Name = "virtualbox"

// Provider runs VBoxManage.
type Provider struct {
	vboxmanage string
}

// New builds the provider. It runs VBoxManage from the manager's PATH: a
// policy names no program for the manager to run (whoever may write a
// policy would otherwise choose what the manager executes), so an
// endpoint is refused.
func New(s power.Settings) (power.Provider, error) {
	if s.Endpoint != "" {
		return nil, fmt.Errorf("virtualbox takes no endpoint (got %q): the manager runs VBoxManage from its own PATH", s.Endpoint)
	}
	path, err := exec.LookPath("VBoxManage")
	if err != nil {
		return nil, fmt.Errorf("VBoxManage not found on the manager's PATH: %w", err)
	}
	return &Provider{vboxmanage: path}, nil
}

func (p *Provider) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, p.vboxmanage, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			return nil, fmt.Errorf("VBoxManage %s: %w", strings.Join(args, " "), ctx.Err())
		}
		return nil, fmt.Errorf("VBoxManage %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// find returns the VM (UUID or name) and its VMState from showvminfo.
func (p *Provider) find(ctx context.Context, m power.Machine) (string, string, error) {
	type vm struct{ id, state string }
	found, _, err := power.Exactly(m, "VM", func(id string) ([]vm, error) {
		out, err := p.run(ctx, "showvminfo", id, "--machinereadable")
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, nil // not this identifier
		}
		info := parse(out)
		return []vm{{id: first(info["UUID"], id), state: info["VMState"]}}, nil
	})
	if err != nil {
		return "", "", fmt.Errorf("VirtualBox: %w", err)
	}
	return found.id, found.state, nil
}

// parse reads `showvminfo --machinereadable` (key="value" lines).
func parse(out []byte) map[string]string {
	info := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			info[strings.Trim(k, `"`)] = strings.Trim(v, `"`)
		}
	}
	return info
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func convert(vmState string) power.PowerState {
	switch vmState {
	case "running", "paused", "starting", "stopping", "saving", "restoring":
		return power.PowerOn
	case "poweroff", "aborted", "saved":
		return power.PowerOff
	}
	return power.PowerUnknown
}

// PowerState implements power.Provider.
func (p *Provider) PowerState(ctx context.Context, m power.Machine) (power.PowerState, error) {
	_, s, err := p.find(ctx, m)
	if err != nil {
		return power.PowerUnknown, err
	}
	return convert(s), nil
}

// PowerOn implements power.Provider (startvm --type headless).
func (p *Provider) PowerOn(ctx context.Context, m power.Machine) error {
	id, s, err := p.find(ctx, m)
	if err != nil {
		return err
	}
	if convert(s) == power.PowerOn {
		return nil
	}
	_, err = p.run(ctx, "startvm", id, "--type", "headless")
	return err
}

// PowerOff implements power.Provider: soft is the ACPI power button,
// hard is poweroff.
func (p *Provider) PowerOff(ctx context.Context, m power.Machine, mode power.OffMode) error {
	id, s, err := p.find(ctx, m)
	if err != nil {
		return err
	}
	switch convert(s) {
	case power.PowerOff:
		return nil
	case power.PowerUnknown:
		return errors.New("VirtualBox: VM " + id + " is in state " + s)
	}
	action := "poweroff"
	if mode == power.OffSoft {
		action = "acpipowerbutton"
	}
	_, err = p.run(ctx, "controlvm", id, action)
	return err
}

// PowerCycle implements power.Cycler (controlvm reset). A VM that is off
// is started.
func (p *Provider) PowerCycle(ctx context.Context, m power.Machine) error {
	id, s, err := p.find(ctx, m)
	if err != nil {
		return err
	}
	if convert(s) == power.PowerOff {
		_, err = p.run(ctx, "startvm", id, "--type", "headless")
		return err
	}
	_, err = p.run(ctx, "controlvm", id, "reset")
	return err
}

var _ power.Cycler = (*Provider)(nil)
