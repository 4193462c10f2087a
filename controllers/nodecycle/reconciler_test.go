package nodecycle

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
)

// Every timeout: its reason, and where the NodeCycle goes from it.
func TestTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ladder []v1alpha1.Strategy
		setup  func(h *harness)
		// until is the phase where the clock starts to run out.
		until  v1alpha1.Phase
		reason v1alpha1.Reason
		phase  v1alpha1.Phase
	}{
		{name: "drain", setup: func(h *harness) { h.create(workloadPod("stuck", testNode, "demo/keep")) },
			until: v1alpha1.PhaseDraining, reason: v1alpha1.ReasonDrainTimeout, phase: v1alpha1.PhaseFailed},
		{name: "reboot", until: v1alpha1.PhaseWaitingForNodeReady, reason: v1alpha1.ReasonRebootTimeout, phase: v1alpha1.PhaseFailed},
		{name: "power off", ladder: []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle}, setup: func(h *harness) { h.power.stuckOff = true },
			until: v1alpha1.PhasePoweringOff, reason: v1alpha1.ReasonPowerOffTimeout, phase: v1alpha1.PhaseFailed},
		{name: "power on", ladder: []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle}, setup: func(h *harness) { h.power.stuckOn = true },
			until: v1alpha1.PhasePoweringOn, reason: v1alpha1.ReasonPowerOnTimeout, phase: v1alpha1.PhaseFailed},
		{name: "power-cycle reboot", ladder: []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle},
			until: v1alpha1.PhaseWaitingForNodeReady, reason: v1alpha1.ReasonRebootTimeout, phase: v1alpha1.PhaseFailed},
		{name: "replace", ladder: []v1alpha1.Strategy{v1alpha1.StrategyReplace}, setup: func(h *harness) {
			h.machine = testMachine
			h.restart()
			h.createMachine(testMachine, "ms-1", "")
		}, until: v1alpha1.PhaseWaitingForReplacement, reason: v1alpha1.ReasonReplaceTimeout, phase: v1alpha1.PhaseFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if tc.setup != nil {
				tc.setup(h)
			}
			h.open(tc.ladder...)
			h.runUntil(tc.until)
			h.runUntil(tc.phase)
			nc := h.cycle()
			if nc.Status.Reason != tc.reason {
				t.Fatalf("reason %s (%s), want %s", nc.Status.Reason, nc.Status.Message, tc.reason)
			}
			if tc.until != v1alpha1.PhaseWaitingForReplacement {
				// An in-place strategy that fails gives the node back.
				if visited := phasesVisited(nc); !slices.Contains(visited, v1alpha1.PhaseUncordoning) {
					t.Errorf("phases %v: a failure must go through Uncordoning", visited)
				}
				if n := h.node(); n.Spec.Unschedulable {
					t.Errorf("node left cordoned after %s", tc.reason)
				}
			}
			// A failure is told in a Warning Event with its reason; a replace
			// that ends without an uncordon tells it in MaintenanceFailed.
			want := string(tc.reason)
			if tc.until == v1alpha1.PhaseWaitingForReplacement {
				want = string(v1alpha1.ReasonMaintenanceFailed)
			}
			if !slices.Contains(h.reasons(), want) {
				t.Errorf("no Warning Event %s", want)
			}
		})
	}
}

// A manager restart in any persisted phase resumes the operation and ends
// it as a run without a restart would.
func TestResumeFromEveryPhase(t *testing.T) {
	for _, tc := range []struct {
		ladder []v1alpha1.Strategy
		phases []v1alpha1.Phase
	}{
		{ladder: []v1alpha1.Strategy{v1alpha1.StrategyReboot}, phases: []v1alpha1.Phase{"", v1alpha1.PhaseCordoning,
			v1alpha1.PhaseDraining, v1alpha1.PhaseRebooting, v1alpha1.PhaseWaitingForNodeReady, v1alpha1.PhaseUncordoning}},
		{ladder: []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle}, phases: []v1alpha1.Phase{v1alpha1.PhaseCordoning, v1alpha1.PhaseDraining,
			v1alpha1.PhasePoweringOff, v1alpha1.PhasePoweringOn, v1alpha1.PhaseWaitingForNodeReady, v1alpha1.PhaseUncordoning}},
		{ladder: []v1alpha1.Strategy{v1alpha1.StrategyReplace}, phases: []v1alpha1.Phase{v1alpha1.PhaseCordoning,
			v1alpha1.PhaseDeletingMachine, v1alpha1.PhaseWaitingForReplacement}},
	} {
		for _, at := range tc.phases {
			t.Run(string(tc.ladder[0])+"/"+string(at), func(t *testing.T) {
				var opts []option
				if tc.ladder[0] == v1alpha1.StrategyReplace {
					opts = append(opts, withMachine())
				}
				h := newHarness(t, opts...)
				if h.machine != "" {
					h.createMachine(testMachine, "ms-1", "")
				}
				h.open(tc.ladder...)
				switch at {
				case "":
				case v1alpha1.PhaseCordoning:
					// Saved by the admission, which took the slot, before
					// the cordon.
					h.settleUntilAdmitted(tc.ladder[0])
				case v1alpha1.PhaseDraining:
					// A drain that waits for its evicted pod is saved in
					// Draining.
					h.create(workloadPod("web-1", testNode))
					h.runUntilOrReboot(at)
				case v1alpha1.PhaseUncordoning:
					// Saved in Uncordoning when the uncordon must be tried
					// again (a conflict), or by an earlier manager.
					h.runUntilOrReboot(v1alpha1.PhaseWaitingForNodeReady)
					h.boot("boot-2")
					nc := h.cycle()
					nc.Status.Phase, nc.Status.BootIDAfter = v1alpha1.PhaseUncordoning, "boot-2"
					if err := h.c.Status().Update(h.ctx, nc); err != nil {
						t.Fatal(err)
					}
				default:
					h.runUntilOrReboot(at)
				}
				h.restart()
				h.finishAfterRestart()
				nc := h.cycle()
				if nc.Status.Phase != v1alpha1.PhaseSucceeded {
					t.Fatalf("resumed from %s, ended %s: %s", at, nc.Status.Phase, nc.Status.Message)
				}
				if h.machine == "" {
					if nc.Status.BootIDAfter != "boot-2" || h.node().Spec.Unschedulable {
						t.Errorf("resumed from %s: boot %q, unschedulable %t", at, nc.Status.BootIDAfter, h.node().Spec.Unschedulable)
					}
					if n := h.power.calledWith("on"); n > 1 {
						t.Errorf("resumed from %s: machine powered on %d times", at, n)
					}
				}
			})
		}
	}
}

// runUntilOrReboot is runUntil with the world playing along: the node
// reboots as asked, and a replacement Machine arrives.
func (h *harness) runUntilOrReboot(p v1alpha1.Phase) {
	h.t.Helper()
	h.runUntil(p, h.rebootWhenRequested, h.powerCycled, h.replacementArrives)
}

func (h *harness) finishAfterRestart() { h.runUntilOrReboot(v1alpha1.PhaseSucceeded) }

// A status edited by hand into a phase without phaseStartTime is resumed,
// not a crash of the manager.
func TestAStatusWithoutPhaseStartTime(t *testing.T) {
	h := newHarness(t)
	h.open()
	nc := h.cycle()
	nc.Status.Phase = v1alpha1.PhaseDraining
	if err := h.c.Status().Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
}

func TestDeletedNodeFailsAndACrashMidDrainIsNotRepeated(t *testing.T) {
	h := newHarness(t)
	h.create(workloadPod("web-1", testNode))
	h.open()
	h.runUntil(v1alpha1.PhaseDraining)
	if err := h.c.Delete(h.ctx, h.node()); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhaseFailed || nc.Status.Reason != v1alpha1.ReasonNodeDeleted {
		t.Errorf("phase %s reason %s after the node was deleted", nc.Status.Phase, nc.Status.Reason)
	}
}

func TestAStepThatKeepsFailingSaysSoInTheStatus(t *testing.T) {
	h := newHarness(t)
	h.create(workloadPod("web-1", testNode)) // the drain waits for it
	h.open()
	h.runUntil(v1alpha1.PhaseDraining)
	h.r.Clusters = brokenClusters{h.r.Clusters}
	_, err := h.r.Reconcile(h.ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: testNamespace, Name: testCycle}})
	if err == nil {
		t.Fatal("no error from a failing step")
	}
	if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhaseDraining || !strings.Contains(nc.Status.Message, "Retrying after an error") {
		t.Errorf("phase %s message %q", nc.Status.Phase, nc.Status.Message)
	}
}

// brokenClusters hands out workloads whose live reads fail, as a missing
// permission makes them.
type brokenClusters struct{ cluster.Clusters }

func (b brokenClusters) Target(ctx context.Context, nc *v1alpha1.NodeCycle) (cluster.Target, error) {
	t, err := b.Clusters.Target(ctx, nc)
	return brokenTarget{t}, err
}

type brokenTarget struct{ cluster.Target }

func (t brokenTarget) Workload() cluster.Workload {
	w := t.Target.Workload()
	w.Reader = failingReader{}
	return w
}

type failingReader struct{}

func (failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("pods is forbidden")
}

func (failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("pods is forbidden")
}

// A NodeCycle that just ended and is read again from a cache that has not
// seen its last save yet is not taken through its last steps again: no
// write, no Event (the reconcile waits for the cache).
func TestAStaleReadOfAnEndedNodeCycleDoesNothing(t *testing.T) {
	var stale *v1alpha1.NodeCycle
	writes := 0
	h := newHarness(t, withInterceptor(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if nc, ok := obj.(*v1alpha1.NodeCycle); ok && stale != nil {
				stale.DeepCopyInto(nc)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			writes++
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			writes++
			return c.Patch(ctx, obj, p, opts...)
		},
	}))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	before := h.cycle()
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	h.reasons()
	stale, writes = before, 0
	h.reconcile()
	if got := h.reasons(); writes != 0 || len(got) != 0 {
		t.Fatalf("a stale read of the ended NodeCycle made %d writes and Events %v", writes, got)
	}
}
