package nodecycle

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/powersettings"
	"github.com/nodecycle/nodecycle/power"
)

// Power-cycle timing.
const (
	powerPollInterval = 2 * time.Second
	// providerCallTimeout bounds one call to a hypervisor or BMC.
	providerCallTimeout = 30 * time.Second
)

// powerCycle is the in-place strategy that goes through the machine's
// hypervisor or BMC: on the drained node, the machine is powered off (soft
// first, hard after the soft-off timeout), then on; the wait ends as for a
// reboot, with a new boot ID and Ready.
//
//	PoweringOff -> PoweringOn -> WaitingForNodeReady -> Uncordoning
type powerCycle struct {
	power  *powersettings.Cache
	client client.Client // the NodeCycles' cluster, for the finalizer
}

func (*powerCycle) Name() v1alpha1.Strategy { return v1alpha1.StrategyPowerCycle }
func (*powerCycle) InPlace() bool           { return true }
func (*powerCycle) Phases() []PhaseSpec {
	return []PhaseSpec{
		{Phase: v1alpha1.PhasePoweringOff, Reason: v1alpha1.ReasonPowerCycling, Held: true},
		{Phase: v1alpha1.PhasePoweringOn, Reason: v1alpha1.ReasonPowerCycling, Held: true},
		{Phase: v1alpha1.PhaseWaitingForNodeReady, Reason: v1alpha1.ReasonWaitingForNodeReady},
	}
}

func (*powerCycle) Start(s *scope) {
	s.nc.Status.PowerOffMode = ""
	s.moveTo(v1alpha1.PhasePoweringOff, "Powering the machine off")
}

// Check makes sure, before the node is touched, that its machine can be
// reached and read with the configured credentials.
func (st *powerCycle) Check(ctx context.Context, s *scope) (v1alpha1.Reason, error) {
	p, m, err := st.power.Target(ctx, s.nc, s.node)
	if err != nil {
		return v1alpha1.ReasonProviderError, err
	}
	ctx, cancel := context.WithTimeout(ctx, providerCallTimeout)
	defer cancel()
	if _, err := p.PowerState(ctx, m); err != nil {
		return v1alpha1.ReasonProviderError, fmt.Errorf("power-cycle provider %s: %w", s.nc.Spec.PowerCycle.Provider, err)
	}
	return "", nil
}

func (st *powerCycle) Advance(ctx context.Context, s *scope) (reconcile.Result, error) {
	status := &s.nc.Status
	switch {
	case status.Phase == v1alpha1.PhaseWaitingForNodeReady:
		return s.waitForNewBoot(ctx)
	case status.RebootRequestID == "":
		// Saved before anything is done, as for a reboot request; the
		// finalizer makes sure a deleted NodeCycle leaves no machine off.
		if err := st.holdPower(ctx, s); err != nil {
			return reconcile.Result{}, err
		}
		status.BootIDBefore = nodes.BootID(s.node)
		status.RebootRequestID = string(s.nc.UID)
		return reconcile.Result{}, nil
	}
	callCtx, cancel := context.WithTimeout(ctx, providerCallTimeout)
	defer cancel()
	p, m, state, res, ok := st.readPower(callCtx, s)
	if !ok {
		return res, nil
	}
	if status.Phase == v1alpha1.PhasePoweringOff {
		return st.powerOff(callCtx, s, p, m, state), nil
	}
	return st.powerOn(callCtx, s, p, m, state), nil
}

// readPower builds the provider, finds the machine and reads its power
// state. An error is retried (providerError); ok false says the reconcile is
// decided.
func (st *powerCycle) readPower(ctx context.Context, s *scope) (power.Provider, power.Machine, power.PowerState, reconcile.Result, bool) {
	p, m, err := st.power.Target(ctx, s.nc, s.node)
	if err != nil {
		return nil, m, power.PowerUnknown, st.providerError(ctx, s, nil, m, err), false
	}
	state, err := p.PowerState(ctx, m)
	if err != nil {
		return nil, m, power.PowerUnknown, st.providerError(ctx, s, p, m, fmt.Errorf("power-cycle provider %s: %w", s.nc.Spec.PowerCycle.Provider, err)), false
	}
	return p, m, state, reconcile.Result{}, true
}

// limit is how long a power phase may take: the power timeout, or without
// one the reboot timeout (a provider that keeps failing is given up).
func limit(s *scope) time.Duration {
	if d := s.nc.Spec.PowerCycle.PowerTimeout.Duration; d > 0 {
		return d
	}
	return s.nc.Spec.RebootTimeout.Duration
}

// providerError retries a failing hypervisor or BMC (a timeout, a restart
// of the BMC) until the phase's limit, saying so in the message; then the
// power cycle is given up.
func (st *powerCycle) providerError(ctx context.Context, s *scope, p power.Provider, m power.Machine, err error) reconcile.Result {
	if s.elapsed() >= limit(s) {
		st.giveUp(ctx, s, p, m, v1alpha1.ReasonProviderError, fmt.Sprintf("%v (retried for %s)", err, limit(s)))
		return reconcile.Result{}
	}
	s.nc.Status.Message = fmt.Sprintf("Retrying: %v", err)
	return reconcile.Result{RequeueAfter: powerPollInterval}
}

// powerOnNow asks for the machine to be on, for a NodeCycle deleted in a
// power phase.
func (st *powerCycle) powerOnNow(ctx context.Context, s *scope) error {
	callCtx, cancel := context.WithTimeout(ctx, providerCallTimeout)
	defer cancel()
	node := s.node
	if node == nil { // deleted: only the policy's machines table can name its machine
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: s.nc.Spec.NodeName}}
	}
	p, m, err := st.power.Target(callCtx, s.nc, node)
	if err != nil {
		return err
	}
	return p.PowerOn(callCtx, m)
}

// giveUp ends the power cycle without a new boot: it asks for power-on
// first, so that a machine is never left off, then runs the ladder's next
// strategy or fails the NodeCycle.
//
// A provider that cannot be built (its Secret deleted, its settings
// broken) is built once more to ask; when that fails too, the message says
// that the machine may be off and must be powered on by hand.
func (st *powerCycle) giveUp(ctx context.Context, s *scope, p power.Provider, m power.Machine, reason v1alpha1.Reason, why string) {
	var err error
	switch {
	case p != nil && len(m.Candidates) > 0:
		err = p.PowerOn(ctx, m)
	case poweredOff(s.nc.Status.Phase):
		err = st.powerOnNow(ctx, s)
	}
	if err != nil {
		why += fmt.Sprintf("; the machine may be off: powering it on failed too (%v); power it on by hand", err)
	}
	s.escalateOrFail(reason, why)
}

// powerOff turns the machine off: soft first, hard once the soft-off
// timeout passed or when soft is refused, then waits until it is off.
func (st *powerCycle) powerOff(callCtx context.Context, s *scope, p power.Provider, m power.Machine, state power.PowerState) reconcile.Result {
	status := &s.nc.Status
	pc := s.nc.Spec.PowerCycle
	elapsed := s.elapsed()
	switch {
	case state == power.PowerOff:
		s.moveTo(v1alpha1.PhasePoweringOn, fmt.Sprintf("Machine %s is off; powering on", m.Candidates[0]))
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonPoweredOff, "Machine %s is off (%s off after %s)", m.Candidates[0], status.PowerOffMode, elapsed.Round(time.Second))
		return reconcile.Result{}
	case elapsed >= pc.PowerTimeout.Duration && pc.PowerTimeout.Duration > 0:
		st.giveUp(callCtx, s, p, m, v1alpha1.ReasonPowerOffTimeout, fmt.Sprintf("Machine %s did not power off within %s (provider %s)", m.Candidates[0], pc.PowerTimeout.Duration, pc.Provider))
		return reconcile.Result{}
	case status.PowerOffMode == "":
		mode := power.OffSoft
		if err := p.PowerOff(callCtx, m, mode); err != nil {
			s.event(corev1.EventTypeWarning, v1alpha1.ReasonSoftPowerOffRefused, "Soft power-off refused, cutting the power: %v", err)
			mode = power.OffHard
			if err := p.PowerOff(callCtx, m, mode); err != nil {
				return st.providerError(callCtx, s, p, m, fmt.Errorf("power-cycle provider %s: %w", pc.Provider, err))
			}
		}
		status.PowerOffMode = string(mode)
		status.Message = fmt.Sprintf("%s power-off of machine %s requested through %s; waiting until it is off", mode, m.Candidates[0], pc.Provider)
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonPowerOffRequested, "%s", status.Message)
	case status.PowerOffMode == string(power.OffSoft) && elapsed >= pc.SoftOffTimeout.Duration:
		if err := p.PowerOff(callCtx, m, power.OffHard); err != nil {
			return st.providerError(callCtx, s, p, m, fmt.Errorf("power-cycle provider %s: %w", pc.Provider, err))
		}
		status.PowerOffMode = string(power.OffHard)
		status.Message = fmt.Sprintf("Machine %s did not shut down within %s; power cut", m.Candidates[0], pc.SoftOffTimeout.Duration)
		s.event(corev1.EventTypeWarning, v1alpha1.ReasonHardPowerOff, "%s", status.Message)
	}
	return reconcile.Result{RequeueAfter: powerPollInterval}
}

// powerOn turns the machine on and waits until it is on; then the proof of
// reboot is the same as for an in-place reboot.
func (st *powerCycle) powerOn(callCtx context.Context, s *scope, p power.Provider, m power.Machine, state power.PowerState) reconcile.Result {
	status := &s.nc.Status
	pc := s.nc.Spec.PowerCycle
	if state == power.PowerOn {
		s.moveTo(v1alpha1.PhaseWaitingForNodeReady, fmt.Sprintf("Machine %s is on; waiting for a boot ID other than %q and Ready=True", m.Candidates[0], status.BootIDBefore))
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonPoweredOn, "Machine %s is on", m.Candidates[0])
		on := metav1.NewMicroTime(s.now)
		status.RebootRequestTime = &on
		return reconcile.Result{RequeueAfter: s.nc.Spec.RebootTimeout.Duration}
	}
	if elapsed := s.elapsed(); pc.PowerTimeout.Duration > 0 && elapsed >= pc.PowerTimeout.Duration {
		st.giveUp(callCtx, s, p, m, v1alpha1.ReasonPowerOnTimeout, fmt.Sprintf("Machine %s did not power on within %s (provider %s)", m.Candidates[0], pc.PowerTimeout.Duration, pc.Provider))
		return reconcile.Result{}
	}
	if err := p.PowerOn(callCtx, m); err != nil {
		return st.providerError(callCtx, s, p, m, fmt.Errorf("power-cycle provider %s: %w", pc.Provider, err))
	}
	status.Message = fmt.Sprintf("Power-on of machine %s requested through %s; waiting until it is on", m.Candidates[0], pc.Provider)
	return reconcile.Result{RequeueAfter: powerPollInterval}
}

// While a NodeCycle may have its machine off (PoweringOff, PoweringOn: its
// Held phases) it carries the finalizer nodecycle.io/power-on: deleting it
// then (by hand, or with its namespace) first powers the machine on
// (Abandon), so that no machine is left off by a NodeCycle that is gone.

// poweredOff reports the phases in which the machine may be off.
func poweredOff(p v1alpha1.Phase) bool {
	return p == v1alpha1.PhasePoweringOff || p == v1alpha1.PhasePoweringOn
}

// holdPower adds the finalizer before the first power call; the scope's
// NodeCycle carries it from then on.
func (st *powerCycle) holdPower(ctx context.Context, s *scope) error {
	return s.hold(ctx, st.client, v1alpha1.FinalizerPowerOn)
}

// Abandon powers the machine on when it may be off: the NodeCycle was
// deleted, or its node is gone, in a power phase. A deleted NodeCycle
// retries until the power timeout after its deletion, then gives up with
// a Warning Event.
func (st *powerCycle) Abandon(ctx context.Context, s *scope) (string, time.Duration) {
	nc := s.nc
	if !poweredOff(nc.Status.Phase) {
		return "", 0
	}
	err := st.powerOnNow(ctx, s)
	deleted := !nc.DeletionTimestamp.IsZero()
	switch {
	case err == nil:
		if deleted {
			s.event(corev1.EventTypeNormal, v1alpha1.ReasonPoweredOn, "NodeCycle deleted in %s; the machine was powered on", nc.Status.Phase)
		}
		return "its machine was powered on", 0
	case deleted && s.now.Sub(nc.DeletionTimestamp.Time) < limit(s):
		return "", powerPollInterval
	case deleted:
		s.event(corev1.EventTypeWarning, v1alpha1.ReasonProviderError, "NodeCycle deleted while the machine may be off; powering it on failed for %s: %v", limit(s), err)
	}
	return fmt.Sprintf("its machine may be off, and powering it on failed: %v", err), 0
}
