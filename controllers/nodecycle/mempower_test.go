package nodecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/power"
)

// memPower is an in-memory power provider: machines by name, with switches
// that make it refuse or never finish.
type memPower struct {
	mu    sync.Mutex
	state map[string]power.PowerState
	// stuckOff: power-off requests are accepted and never happen.
	stuckOff bool
	// stuckOn: power-on requests are accepted and never happen.
	stuckOn bool
	// refuseSoft: soft power-off is refused.
	refuseSoft bool
	// fail makes every call fail; failures, only the next so many.
	fail     error
	failures int
	// calls counts calls by kind ("off-Soft", "off-Hard", "on").
	calls map[string]int
}

// failing says whether this call fails.
func (p *memPower) failing() error {
	if p.failures > 0 {
		p.failures--
		return errors.New("BMC busy")
	}
	return p.fail
}

func (p *memPower) PowerState(_ context.Context, m power.Machine) (power.PowerState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.failing(); err != nil {
		return power.PowerUnknown, err
	}
	s, ok := p.state[m.Candidates[0]]
	if !ok {
		return power.PowerUnknown, fmt.Errorf("no machine %s", m.Candidates[0])
	}
	return s, nil
}

func (p *memPower) PowerOff(_ context.Context, m power.Machine, mode power.OffMode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count("off-" + string(mode))
	if err := p.failing(); err != nil {
		return err
	}
	if mode == power.OffSoft && p.refuseSoft {
		return fmt.Errorf("soft power-off not supported")
	}
	if !p.stuckOff {
		p.state[m.Candidates[0]] = power.PowerOff
	}
	return nil
}

func (p *memPower) PowerOn(_ context.Context, m power.Machine) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count("on")
	if err := p.failing(); err != nil {
		return err
	}
	if !p.stuckOn {
		p.state[m.Candidates[0]] = power.PowerOn
	}
	return nil
}

func (p *memPower) count(what string) {
	if p.calls == nil {
		p.calls = map[string]int{}
	}
	p.calls[what]++
}

func (p *memPower) calledWith(what string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[what]
}

// machineClusters is the local cluster with the node behind a Cluster API
// Machine: what the engine sees of the Cluster API mode, without a
// workload cluster connection.
type machineClusters struct {
	cluster.Local
	machine string
	// resumed, when set, is called as the remediation of the Machine resumes.
	resumed func()
}

func (m machineClusters) Target(ctx context.Context, nc *v1alpha1.NodeCycle) (cluster.Target, error) {
	t, err := m.Local.Target(ctx, nc)
	return machineTarget{Target: t, machine: m.machine, resumed: m.resumed}, err
}

type machineTarget struct {
	cluster.Target
	machine string
	resumed func()
}

func (t machineTarget) Machine() string { return t.machine }

func (t machineTarget) ResumeRemediation(ctx context.Context, owner string) error {
	if t.resumed != nil {
		t.resumed()
	}
	return t.Target.ResumeRemediation(ctx, owner)
}
