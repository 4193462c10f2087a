package nodecycle

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

func TestEscalation(t *testing.T) {
	t.Run("reboot timeout escalates to power-cycle", func(t *testing.T) {
		h := newHarness(t)
		h.open(v1alpha1.StrategyReboot, v1alpha1.StrategyPowerCycle)
		h.runUntil(v1alpha1.PhasePoweringOff)
		nc := h.cycle()
		if nc.Status.Step != 1 || nc.Status.Strategy != v1alpha1.StrategyPowerCycle {
			t.Fatalf("step %d strategy %s after escalation", nc.Status.Step, nc.Status.Strategy)
		}
		h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
		h.boot("boot-2")
		h.runUntil(v1alpha1.PhaseSucceeded)
		if got := h.reasons(); !slices.Contains(got, string(v1alpha1.ReasonEscalating)) {
			t.Errorf("no Escalating Event in %v", got)
		}
	})
	t.Run("no agent escalates before asking", func(t *testing.T) {
		h := newHarness(t)
		if err := h.c.Delete(h.ctx, agentPod(testNode)); err != nil {
			t.Fatal(err)
		}
		h.open(v1alpha1.StrategyReboot, v1alpha1.StrategyPowerCycle)
		h.runUntil(v1alpha1.PhasePoweringOff)
		if _, asked := h.node().Annotations[v1alpha1.AnnotationRebootRequest]; asked {
			t.Error("a reboot was requested from a node without a Ready agent")
		}
	})
	t.Run("an agent not back yet is waited for before the cordon", func(t *testing.T) {
		h := newHarness(t)
		if err := h.c.Delete(h.ctx, agentPod(testNode)); err != nil {
			t.Fatal(err)
		}
		h.open(v1alpha1.StrategyReboot)
		for range 3 {
			if res := h.settle(); res.RequeueAfter != agentPollInterval {
				t.Fatalf("requeue after %s, want %s", res.RequeueAfter, agentPollInterval)
			}
			h.clock.Step(agentPollInterval)
		}
		nc := h.cycle()
		if nc.Status.Phase != v1alpha1.PhasePending || !strings.HasPrefix(nc.Status.Message, "Waiting for a Ready nodecycle agent pod") || h.node().Spec.Unschedulable {
			t.Fatalf("phase %s (%s), cordoned %t: want Pending, not cordoned", nc.Status.Phase, nc.Status.Message, h.node().Spec.Unschedulable)
		}
		h.create(agentPod(testNode))
		h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	})
	t.Run("the last step fails", func(t *testing.T) {
		h := newHarness(t)
		if err := h.c.Delete(h.ctx, agentPod(testNode)); err != nil {
			t.Fatal(err)
		}
		h.open(v1alpha1.StrategyReboot)
		h.runUntil(v1alpha1.PhaseFailed)
		if r := h.cycle().Status.Reason; r != v1alpha1.ReasonAgentNotReady {
			t.Errorf("reason %s, want AgentNotReady", r)
		}
	})
}

// noop is a strategy known only to this test: it proves that a strategy
// is its own type plus a line in the table, and that the engine gives it
// the slot, the cordon, the drain, escalation and the uncordon.
type noop struct{ advances int }

const phaseNooping v1alpha1.Phase = "Nooping"

func (*noop) Name() v1alpha1.Strategy { return "noop" }

func (*noop) InPlace() bool { return true }

func (*noop) Phases() []PhaseSpec {
	return []PhaseSpec{{Phase: phaseNooping, Reason: "Nooping"}}
}

func (*noop) Check(context.Context, *scope) (v1alpha1.Reason, error) { return "", nil }

func (*noop) Start(s *scope) { s.moveTo(phaseNooping, "Doing nothing") }

func (*noop) Abandon(context.Context, *scope) (string, time.Duration) { return "", 0 }

func (n *noop) Advance(_ context.Context, s *scope) (reconcile.Result, error) {
	n.advances++
	s.moveTo(v1alpha1.PhaseUncordoning, "Nothing done")
	return reconcile.Result{}, nil
}

func TestAStrategyIsATypeAndALineInTheTable(t *testing.T) {
	h := newHarness(t)
	n := &noop{}
	h.restart(n)
	if err := h.c.Delete(h.ctx, agentPod(testNode)); err != nil {
		t.Fatal(err)
	}
	h.open(v1alpha1.StrategyReboot, "noop") // no agent: reboot escalates to noop
	h.runUntil(v1alpha1.PhaseSucceeded)
	want := []v1alpha1.Phase{v1alpha1.PhaseCordoning, v1alpha1.PhaseDraining, v1alpha1.PhaseRebooting, phaseNooping, v1alpha1.PhaseUncordoning, v1alpha1.PhaseSucceeded}
	if got := phasesVisited(h.cycle()); !slices.Equal(got, want) || n.advances != 1 {
		t.Errorf("phases %v (noop advanced %d times), want %v", got, n.advances, want)
	}
}
