package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/providers"
)

// Power-cycle timing.
const (
	powerPollInterval = 2 * time.Second
	// providerCallTimeout bounds one call to a hypervisor or BMC.
	providerCallTimeout = 30 * time.Second
)

// powerTarget builds the provider and finds the machine behind the node.
// Its errors name the provider and the reason, never a credential.
func (r *NodeCycleReconciler) powerTarget(ctx context.Context, nc *v1alpha1.NodeCycle, node *corev1.Node) (providers.Provider, providers.Machine, error) {
	pc := nc.Spec.PowerCycle
	if pc == nil {
		return nil, providers.Machine{}, errors.New("strategy power-cycle needs powerCycle settings: set spec.powerCycle in a NodeCyclePolicy that selects this node")
	}
	settings, err := providerSettings(ctx, r.APIReader, nc.Namespace, pc)
	if err != nil {
		return nil, providers.Machine{}, fmt.Errorf("power-cycle provider %s: %w", pc.Provider, err)
	}
	owner := nc.Namespace + "/" + nc.Spec.Policy
	p, err := r.provider(owner, pc.Provider, settings)
	if err != nil {
		return nil, providers.Machine{}, fmt.Errorf("power-cycle %w", err)
	}
	m, err := providers.Resolve(node, pc.Provider)
	if err != nil {
		return nil, providers.Machine{}, fmt.Errorf("power-cycle provider %s: %w", pc.Provider, err)
	}
	return p, m, nil
}

// preflight checks, before the node is touched, that its machine can be
// reached and read with the configured credentials.
func (r *NodeCycleReconciler) preflight(ctx context.Context, s *step) error {
	if !hasStrategy(s.nc.Spec.Strategies, v1alpha1.StrategyPowerCycle) {
		return nil
	}
	p, m, err := r.powerTarget(ctx, s.nc, s.node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, providerCallTimeout)
	defer cancel()
	if _, err := p.PowerState(ctx, m); err != nil {
		return fmt.Errorf("power-cycle provider %s: %w", s.nc.Spec.PowerCycle.Provider, err)
	}
	return nil
}

func hasStrategy(ladder []v1alpha1.Strategy, want v1alpha1.Strategy) bool {
	for _, s := range ladder {
		if s == want {
			return true
		}
	}
	return false
}

// readPower builds the provider, finds the machine and reads its power
// state. On failure it fails the NodeCycle and returns ok false.
func (r *NodeCycleReconciler) readPower(ctx context.Context, s *step) (providers.Provider, providers.Machine, providers.PowerState, bool) {
	p, m, err := r.powerTarget(ctx, s.nc, s.node)
	if err != nil {
		r.fail(s, "ProviderError", err.Error())
		return nil, m, providers.PowerUnknown, false
	}
	state, err := p.PowerState(ctx, m)
	if err != nil {
		r.fail(s, "ProviderError", fmt.Sprintf("power-cycle provider %s: %v", s.nc.Spec.PowerCycle.Provider, err))
		return nil, m, providers.PowerUnknown, false
	}
	return p, m, state, true
}

// powerOff turns the machine off: soft first, hard once the soft-off
// timeout passed or when soft is refused, then waits until it is off.
func (r *NodeCycleReconciler) powerOff(ctx context.Context, s *step) (reconcile.Result, error) {
	st := &s.nc.Status
	if st.RebootRequestID == "" {
		// Saved before anything is done, as for a reboot request.
		st.BootIDBefore = bootID(s.node)
		st.RebootRequestID = string(s.nc.UID)
		return reconcile.Result{Requeue: true}, nil
	}
	pc := s.nc.Spec.PowerCycle
	callCtx, cancel := context.WithTimeout(ctx, providerCallTimeout)
	defer cancel()
	p, m, state, ok := r.readPower(callCtx, s)
	if !ok {
		return reconcile.Result{Requeue: true}, nil
	}
	elapsed := s.now.Sub(st.PhaseStartTime.Time)
	switch {
	case state == providers.PowerOff:
		r.moveTo(s, v1alpha1.PhasePoweringOn, fmt.Sprintf("Machine %s is off; powering on", m.Candidates[0]))
		s.event(corev1.EventTypeNormal, "PoweredOff", "Machine %s is off (%s off after %s)", m.Candidates[0], st.PowerOffMode, elapsed.Round(time.Second))
		return reconcile.Result{Requeue: true}, nil
	case elapsed >= pc.PowerTimeout.Duration && pc.PowerTimeout.Duration > 0:
		r.fail(s, "PowerOffTimeout", fmt.Sprintf("Machine %s did not power off within %s (provider %s)", m.Candidates[0], pc.PowerTimeout.Duration, pc.Provider))
		return reconcile.Result{Requeue: true}, nil
	case st.PowerOffMode == "":
		mode := providers.OffSoft
		if err := p.PowerOff(callCtx, m, mode); err != nil {
			s.event(corev1.EventTypeWarning, "SoftPowerOffRefused", "Soft power-off refused, cutting the power: %v", err)
			mode = providers.OffHard
			if err := p.PowerOff(callCtx, m, mode); err != nil {
				r.fail(s, "ProviderError", fmt.Sprintf("power-cycle provider %s: %v", pc.Provider, err))
				return reconcile.Result{Requeue: true}, nil
			}
		}
		st.PowerOffMode = string(mode)
		st.Message = fmt.Sprintf("%s power-off of machine %s requested through %s; waiting until it is off", mode, m.Candidates[0], pc.Provider)
		s.event(corev1.EventTypeNormal, "PowerOffRequested", "%s", st.Message)
	case st.PowerOffMode == string(providers.OffSoft) && elapsed >= pc.SoftOffTimeout.Duration:
		if err := p.PowerOff(callCtx, m, providers.OffHard); err != nil {
			r.fail(s, "ProviderError", fmt.Sprintf("power-cycle provider %s: %v", pc.Provider, err))
			return reconcile.Result{Requeue: true}, nil
		}
		st.PowerOffMode = string(providers.OffHard)
		st.Message = fmt.Sprintf("Machine %s did not shut down within %s; power cut", m.Candidates[0], pc.SoftOffTimeout.Duration)
		s.event(corev1.EventTypeWarning, "HardPowerOff", "%s", st.Message)
	}
	return reconcile.Result{RequeueAfter: powerPollInterval}, nil
}

// powerOn turns the machine on and waits until it is on; then the proof of
// reboot is the same as for an in-place reboot.
func (r *NodeCycleReconciler) powerOn(ctx context.Context, s *step) (reconcile.Result, error) {
	st := &s.nc.Status
	pc := s.nc.Spec.PowerCycle
	callCtx, cancel := context.WithTimeout(ctx, providerCallTimeout)
	defer cancel()
	p, m, state, ok := r.readPower(callCtx, s)
	if !ok {
		return reconcile.Result{Requeue: true}, nil
	}
	if state == providers.PowerOn {
		r.moveTo(s, v1alpha1.PhaseWaitingForNodeReady, fmt.Sprintf("Machine %s is on; waiting for a boot ID other than %q and Ready=True", m.Candidates[0], st.BootIDBefore))
		s.event(corev1.EventTypeNormal, "PoweredOn", "Machine %s is on", m.Candidates[0])
		now := s.now
		st.RebootRequestTime = microTime(now)
		return reconcile.Result{RequeueAfter: s.nc.Spec.RebootTimeout.Duration}, nil
	}
	if elapsed := s.now.Sub(st.PhaseStartTime.Time); pc.PowerTimeout.Duration > 0 && elapsed >= pc.PowerTimeout.Duration {
		r.fail(s, "PowerOnTimeout", fmt.Sprintf("Machine %s did not power on within %s (provider %s)", m.Candidates[0], pc.PowerTimeout.Duration, pc.Provider))
		return reconcile.Result{Requeue: true}, nil
	}
	if err := p.PowerOn(callCtx, m); err != nil {
		r.fail(s, "ProviderError", fmt.Sprintf("power-cycle provider %s: %v", pc.Provider, err))
		return reconcile.Result{Requeue: true}, nil
	}
	st.Message = fmt.Sprintf("Power-on of machine %s requested through %s; waiting until it is on", m.Candidates[0], pc.Provider)
	return reconcile.Result{RequeueAfter: powerPollInterval}, nil
}

// provider returns the provider for the settings of one policy, built once:
// providers may hold connections (libvirt). When the policy's settings or
// its Secret change, the old provider is closed and replaced, so the cache
// holds at most one provider per policy.
func (r *NodeCycleReconciler) provider(owner, name string, s providers.Settings) (providers.Provider, error) {
	h := sha256.New()
	_ = json.NewEncoder(h).Encode(struct {
		Name string
		S    providers.Settings
	}{name, s})
	sum := hex.EncodeToString(h.Sum(nil))
	r.providersMu.Lock()
	defer r.providersMu.Unlock()
	if b, ok := r.built[owner]; ok {
		if b.settings == sum {
			return b.provider, nil
		}
		if c, ok := b.provider.(io.Closer); ok {
			_ = c.Close()
		}
	}
	p, err := r.Providers.New(name, s)
	if err != nil {
		delete(r.built, owner)
		return nil, err
	}
	if r.built == nil {
		r.built = map[string]builtProvider{}
	}
	r.built[owner] = builtProvider{settings: sum, provider: p}
	return p, nil
}

type builtProvider struct {
	settings string // hash of provider name and settings
	provider providers.Provider
}
