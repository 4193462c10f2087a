package nodecycle

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/power"
)

func TestPowerCycleWalksEveryPhase(t *testing.T) {
	h := newHarness(t)
	h.open(v1alpha1.StrategyPowerCycle)
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	if h.power.calledWith("off-Soft") != 1 || h.power.calledWith("on") != 1 {
		t.Fatalf("provider calls %v, want one soft off and one on", h.power.calls)
	}
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	want := []v1alpha1.Phase{v1alpha1.PhaseCordoning, v1alpha1.PhaseDraining, v1alpha1.PhasePoweringOff, v1alpha1.PhasePoweringOn,
		v1alpha1.PhaseWaitingForNodeReady, v1alpha1.PhaseUncordoning, v1alpha1.PhaseSucceeded}
	if got := phasesVisited(h.cycle()); !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
}

// H8: a provider error does not end a power cycle at once, a machine is
// never left off, and a power timeout escalates as the design says.
func TestPowerCycleSurvivesProviderErrors(t *testing.T) {
	t.Run("errors are retried", func(t *testing.T) {
		h := newHarness(t)
		h.open(v1alpha1.StrategyPowerCycle)
		h.runUntil(v1alpha1.PhasePoweringOn)
		h.power.failures = 3 // the BMC answers errors for a while
		h.settle()
		if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhasePoweringOn || !strings.Contains(nc.Status.Message, "Retrying: power-cycle provider memory: BMC busy") {
			t.Fatalf("phase %s (%s) after a provider error", nc.Status.Phase, nc.Status.Message)
		}
		h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
		h.boot("boot-2")
		h.runUntil(v1alpha1.PhaseSucceeded)
	})
	t.Run("a provider that keeps failing is given up at the power timeout, after asking for power-on", func(t *testing.T) {
		h := newHarness(t)
		h.open(v1alpha1.StrategyPowerCycle)
		h.runUntil(v1alpha1.PhasePoweringOn)
		h.power.fail = errors.New("connection refused")
		h.runUntil(v1alpha1.PhaseFailed)
		nc := h.cycle()
		if nc.Status.Reason != v1alpha1.ReasonProviderError || !strings.Contains(nc.Status.Message, "retried for 5m0s") {
			t.Fatalf("reason %s message %q", nc.Status.Reason, nc.Status.Message)
		}
		if got := h.cycle().Status.PhaseStartTime.Sub(epoch); got < 5*time.Minute {
			t.Errorf("given up after %s, before the power timeout", got)
		}
	})
	// H8 remainder: the provider cannot be built any more while the
	// machine is off (its Secret deleted): the message says so.
	t.Run("a provider that cannot be built says the machine may be off", func(t *testing.T) {
		h := newHarness(t)
		h.open(v1alpha1.StrategyPowerCycle)
		h.runUntil(v1alpha1.PhasePoweringOn)
		nc := h.cycle()
		nc.Spec.PowerCycle.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "deleted"}
		if err := h.c.Update(h.ctx, nc); err != nil {
			t.Fatal(err)
		}
		h.runUntil(v1alpha1.PhaseFailed)
		nc = h.cycle()
		if nc.Status.Reason != v1alpha1.ReasonProviderError || !strings.Contains(nc.Status.Message, "the machine may be off: powering it on failed too") ||
			!strings.Contains(nc.Status.Message, "power it on by hand") {
			t.Fatalf("reason %s message %q", nc.Status.Reason, nc.Status.Message)
		}
	})
	t.Run("a power-off timeout turns the machine on again and escalates", func(t *testing.T) {
		h := newHarness(t, withMachine())
		h.createMachine(testMachine, "ms-1", "")
		h.open(v1alpha1.StrategyPowerCycle, v1alpha1.StrategyReplace)
		h.runUntil(v1alpha1.PhasePoweringOff)
		h.power.stuckOff = true
		h.runUntil(v1alpha1.PhaseWaitingForReplacement)
		if nc := h.cycle(); nc.Status.Step != 1 || nc.Status.Strategy != v1alpha1.StrategyReplace {
			t.Fatalf("step %d strategy %s: want the ladder's replace", nc.Status.Step, nc.Status.Strategy)
		}
		if h.power.calledWith("on") != 1 {
			t.Errorf("power-on asked %d times before giving up the power cycle, want 1", h.power.calledWith("on"))
		}
	})
	t.Run("a power-on timeout escalates", func(t *testing.T) {
		h := newHarness(t)
		h.open(v1alpha1.StrategyPowerCycle, v1alpha1.StrategyReboot)
		h.runUntil(v1alpha1.PhasePoweringOn)
		h.power.stuckOn = true
		h.runUntil(v1alpha1.PhaseWaitingForNodeReady) // the reboot requested at once
		if nc := h.cycle(); nc.Status.Strategy != v1alpha1.StrategyReboot {
			t.Fatalf("strategy %s after the power-on timeout, want reboot", nc.Status.Strategy)
		}
		if r := h.reasons(); !slices.Contains(r, string(v1alpha1.ReasonEscalating)) {
			t.Errorf("no Escalating Event in %v", r)
		}
	})
}

func TestSoftPowerOffTimesOutIntoHardOff(t *testing.T) {
	h := newHarness(t)
	h.open(v1alpha1.StrategyPowerCycle)
	h.runUntil(v1alpha1.PhasePoweringOff)
	h.power.stuckOff = true
	h.settle()
	h.power.stuckOff = false // only a hard off works: the guest ignores soft
	h.power.state[testNode] = power.PowerOn
	h.clock.Step(time.Minute)
	h.runUntil(v1alpha1.PhasePoweringOn)
	if h.power.calledWith("off-Hard") != 1 || h.cycle().Status.PowerOffMode != string(power.OffHard) {
		t.Fatalf("calls %v, mode %s: want a hard off after the soft-off timeout", h.power.calls, h.cycle().Status.PowerOffMode)
	}
}

// powerCycled boots the node once its machine was powered on again.
func (h *harness) powerCycled() bool {
	if h.cycle().Status.Phase == v1alpha1.PhaseWaitingForNodeReady && h.power.calledWith("on") > 0 && nodesBoot(h) == "boot-1" {
		h.boot("boot-2")
		return true
	}
	return false
}

// Lower: a NodeCycle deleted while its machine is off powers the machine
// on before it goes (a finalizer); a finished one carries no finalizer.
func TestDeletingAPowerCycleMidWayPowersTheMachineOn(t *testing.T) {
	h := newHarness(t)
	h.power.stuckOn = true // the machine stays off: the NodeCycle waits in PoweringOn
	h.open(v1alpha1.StrategyPowerCycle)
	h.runUntil(v1alpha1.PhasePoweringOn)
	h.settle()
	if !slices.Contains(h.cycle().Finalizers, v1alpha1.FinalizerPowerOn) {
		t.Fatalf("no finalizer while the machine is off: %v", h.cycle().Finalizers)
	}
	h.power.stuckOn = false
	h.reasons()
	if err := h.c.Delete(h.ctx, h.cycle()); err != nil {
		t.Fatal(err)
	}
	h.reconcile()
	if s := h.power.state[testNode]; s != power.PowerOn {
		t.Fatalf("machine %s after its NodeCycle was deleted", s)
	}
	// The operator is told on the node (this Event was once made and never sent).
	if got := h.reasons(); !slices.Contains(got, string(v1alpha1.ReasonPoweredOn)) {
		t.Errorf("Events %v after the deletion, want %s", got, v1alpha1.ReasonPoweredOn)
	}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: testCycle}, &v1alpha1.NodeCycle{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the NodeCycle is still there: %v", err)
	}

	t.Run("finished", func(t *testing.T) {
		h := newHarness(t)
		h.open(v1alpha1.StrategyPowerCycle)
		h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
		h.boot("boot-2")
		h.runUntil(v1alpha1.PhaseSucceeded)
		h.settle()
		if f := h.cycle().Finalizers; len(f) != 0 {
			t.Fatalf("finalizers %v on a finished NodeCycle", f)
		}
	})
}

// settleUntilAdmitted leaves the NodeCycle as the admission saves it before
// the cordon: in Cordoning, holding the slot.
func (h *harness) settleUntilAdmitted(strategy v1alpha1.Strategy) {
	h.t.Helper()
	nc := h.cycle()
	now := metav1.NewMicroTime(h.clock.Now())
	nc.Status.Phase, nc.Status.StartTime, nc.Status.PhaseStartTime, nc.Status.Strategy = v1alpha1.PhaseCordoning, &now, &now, strategy
	if err := h.c.Status().Update(h.ctx, nc); err != nil {
		h.t.Fatal(err)
	}
}

// Lower: a Node deleted while its machine is powered off fails its
// NodeCycle with the machine powered on again, and holds its cluster's
// slot for a reboot timeout (its machine may not be back) before the next
// node may go.
func TestANodeDeletedMidPowerCycleIsPoweredOnAndHoldsTheSlot(t *testing.T) {
	h := newHarness(t)
	h.power.stuckOn = true
	h.open(v1alpha1.StrategyPowerCycle)
	h.runUntil(v1alpha1.PhasePoweringOn)
	h.power.stuckOn = false
	if err := h.c.Delete(h.ctx, h.node()); err != nil {
		t.Fatal(err)
	}
	h.settle()
	nc := h.cycle()
	if nc.Status.Phase != v1alpha1.PhaseFailed || nc.Status.Reason != v1alpha1.ReasonNodeDeleted || !strings.Contains(nc.Status.Message, "its machine was powered on") {
		t.Fatalf("phase %s reason %s (%s)", nc.Status.Phase, nc.Status.Reason, nc.Status.Message)
	}
	if s := h.power.state[testNode]; s != power.PowerOn {
		t.Fatalf("machine %s after its node was deleted mid power-cycle", s)
	}

	other := testNodeObject("worker-2", "boot-1")
	h.create(other)
	next := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "worker-2-next"},
		Spec: h.cfg.CycleSpec("worker-2", nil)}
	next.Spec.BootID, next.Spec.Attempt = "boot-1", 1
	h.create(next)
	get := func() *v1alpha1.NodeCycle {
		got := &v1alpha1.NodeCycle{}
		if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(next), got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	reconcileNext := func() {
		if _, err := h.r.Reconcile(h.ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(next)}); err != nil {
			t.Fatal(err)
		}
	}
	reconcileNext()
	if got := get(); got.Status.Phase != v1alpha1.PhasePending {
		t.Fatalf("the next node started at once (%s): the deleted node's slot was freed", got.Status.Phase)
	}
	h.clock.Step(h.cfg.RebootTimeout)
	reconcileNext()
	if got := get(); got.Status.StartTime == nil {
		t.Fatalf("the next node still waits after the reboot timeout: %s (%s)", got.Status.Phase, got.Status.Message)
	}
}
