package nodecycle

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/providers"
)

// rebootingKubelet reboots the node once the agent was asked to: a new
// boot ID and Ready, as the agent and kubelet do after a reboot.
func (h *harness) rebootWhenRequested() bool {
	if _, asked := h.node().Annotations[v1alpha1.AnnotationRebootRequest]; asked && nodesBoot(h) == "boot-1" {
		h.boot("boot-2")
		return true
	}
	return false
}

func nodesBoot(h *harness) string { return h.node().Status.NodeInfo.BootID }

func TestRebootWalksEveryPhaseAndProvesTheReboot(t *testing.T) {
	h := newHarness(t)
	h.create(workloadPod("web-1", testNode))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	if !h.node().Spec.Unschedulable || h.node().Annotations[v1alpha1.AnnotationCordonedBy] != testNamespace+"/"+testCycle {
		t.Fatalf("node not cordoned by nodecycle while waiting for the reboot: %+v", h.node().Annotations)
	}
	if c := nodeCondition(h.node(), v1alpha1.ConditionMaintenanceInProgress); c == nil || c.Status != corev1.ConditionTrue || c.Reason != string(v1alpha1.ReasonWaitingForNodeReady) {
		t.Fatalf("MaintenanceInProgress = %+v, want True/WaitingForNodeReady", c)
	}
	// The same boot ID, even Ready, is no proof.
	h.clock.Step(time.Minute)
	h.settle()
	if p := h.cycle().Status.Phase; p != v1alpha1.PhaseWaitingForNodeReady {
		t.Fatalf("phase %s before the node rebooted", p)
	}
	// A new boot that is not Ready yet is no proof either.
	h.editNode(func(n *corev1.Node) {
		n.Status.NodeInfo.BootID = "boot-2"
		setCondition(n, corev1.NodeReady, corev1.ConditionFalse)
	})
	h.settle()
	if p := h.cycle().Status.Phase; p != v1alpha1.PhaseWaitingForNodeReady {
		t.Fatalf("phase %s with a new boot that is not Ready", p)
	}
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)

	nc := h.cycle()
	want := []v1alpha1.Phase{v1alpha1.PhaseCordoning, v1alpha1.PhaseDraining, v1alpha1.PhaseRebooting,
		v1alpha1.PhaseWaitingForNodeReady, v1alpha1.PhaseUncordoning, v1alpha1.PhaseSucceeded}
	if got := phasesVisited(nc); !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	if nc.Status.BootIDBefore != "boot-1" || nc.Status.BootIDAfter != "boot-2" {
		t.Errorf("boot IDs %q -> %q", nc.Status.BootIDBefore, nc.Status.BootIDAfter)
	}
	n := h.node()
	if n.Spec.Unschedulable || n.Annotations[v1alpha1.AnnotationCordonedBy] != "" || n.Annotations[v1alpha1.AnnotationRebootRequest] != "" {
		t.Errorf("node left cordoned or with a reboot request: %v %v", n.Spec.Unschedulable, n.Annotations)
	}
	if c := nodeCondition(n, v1alpha1.ConditionMaintenanceInProgress); c == nil || c.Status != corev1.ConditionFalse || c.Reason != string(v1alpha1.ReasonMaintenanceCompleted) {
		t.Errorf("MaintenanceInProgress = %+v, want False/MaintenanceCompleted", c)
	}
	wantEvents := []string{"MaintenanceStarted", "Cordoned", "Evicted", "Drained", "RebootRequested", "RebootVerified", "Uncordoned", "MaintenanceCompleted"}
	if got := h.reasons(); !slices.Equal(got, wantEvents) {
		t.Errorf("events %v, want %v", got, wantEvents)
	}
}

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

func TestReplaceDeletesTheMachineAndWaitsForItsReplacement(t *testing.T) {
	h := newHarness(t, withMachine())
	h.createMachine(testMachine, "ms-1", "")
	h.open(v1alpha1.StrategyReplace)
	h.runUntil(v1alpha1.PhaseWaitingForReplacement)
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: testMachine}, &clusterv1.Machine{}); err == nil {
		t.Fatal("the Machine was not deleted")
	}
	h.clock.Step(time.Second)
	h.createMachine("worker-2-machine", "ms-1", "worker-2")
	h.create(testNodeObject("worker-2", "boot-9"))
	h.runUntil(v1alpha1.PhaseSucceeded)
	nc := h.cycle()
	if nc.Status.ReplacementMachine != "worker-2-machine" || nc.Status.MachineSet != "ms-1" {
		t.Errorf("replacement %q of MachineSet %q", nc.Status.ReplacementMachine, nc.Status.MachineSet)
	}
	want := []v1alpha1.Phase{v1alpha1.PhaseCordoning, v1alpha1.PhaseDeletingMachine, v1alpha1.PhaseWaitingForReplacement, v1alpha1.PhaseSucceeded}
	if got := phasesVisited(nc); !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
}

func (h *harness) createMachine(name, machineSet, node string) {
	h.t.Helper()
	m := &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name,
		Labels:            map[string]string{clusterv1.ClusterNameLabel: ""},
		CreationTimestamp: metav1.NewTime(h.clock.Now()),
		OwnerReferences:   []metav1.OwnerReference{{APIVersion: clusterv1.GroupVersion.String(), Kind: "MachineSet", Name: machineSet, UID: "ms", Controller: ptrTo(true)}}},
	}
	h.create(m)
	if node != "" {
		m.Status.NodeRef = clusterv1.MachineNodeReference{Name: node}
		if err := h.c.Status().Update(h.ctx, m); err != nil {
			h.t.Fatalf("setting nodeRef: %v", err)
		}
	}
}

// H11: a replace deletes only the Machine whose node the NodeCycle is for.
func TestReplaceDeletesOnlyTheNodesMachine(t *testing.T) {
	h := newHarness(t, withMachine())
	h.createMachine(testMachine, "ms-1", "someone-elses-node")
	h.open(v1alpha1.StrategyReplace)
	h.runUntil(v1alpha1.PhaseFailed)
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: testMachine}, &clusterv1.Machine{}); err != nil {
		t.Fatalf("the Machine of another node was deleted: %v", err)
	}
	if msg := h.cycle().Status.Message; !strings.Contains(msg, "has node someone-elses-node, not worker-1") {
		t.Errorf("message %q", msg)
	}
}

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

// H2: an eviction refused with a 500 (two PDBs over one pod) or by a
// webhook is named in the message, the other pods are evicted, and the
// drain times out as any other: the node is given back and the slot freed.
func TestDrainTimesOutOnEvictionErrors(t *testing.T) {
	h := newHarness(t, withInterceptor(interceptor.Funcs{SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj client.Object, s client.Object, opts ...client.SubResourceCreateOption) error {
		if obj.GetName() == "double-pdb" {
			return apierrors.NewInternalError(errors.New("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."))
		}
		return c.SubResource(sub).Create(ctx, obj, s, opts...)
	}}))
	h.create(workloadPod("double-pdb", testNode))
	h.create(workloadPod("web-1", testNode))
	h.open()
	h.runUntil(v1alpha1.PhaseDraining)
	h.settle()
	if msg := h.cycle().Status.Message; !strings.Contains(msg, "demo/double-pdb (eviction refused: Internal error occurred: This pod has more than one PodDisruptionBudget") {
		t.Fatalf("message %q does not name the blocker", msg)
	}
	h.runUntil(v1alpha1.PhaseFailed)
	nc := h.cycle()
	if nc.Status.Reason != v1alpha1.ReasonDrainTimeout || h.node().Spec.Unschedulable {
		t.Fatalf("reason %s, node unschedulable %t: want DrainTimeout and the node given back", nc.Status.Reason, h.node().Spec.Unschedulable)
	}
	if !slices.Contains(h.reasons(), string(v1alpha1.ReasonEvicted)) {
		t.Error("the other pod was not evicted")
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

// H6: at the reboot timeout, a node whose agent acknowledged the request
// and that still runs its old boot may yet go down: it stays cordoned
// (which holds its cluster's slot) and keeps the request.
func TestAnAcknowledgedRebootKeepsTheNodeCordoned(t *testing.T) {
	h := newHarness(t)
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	id := h.cycle().Status.RebootRequestID
	h.editNode(func(n *corev1.Node) { n.Annotations[v1alpha1.AnnotationRebootAck] = id })
	h.runUntil(v1alpha1.PhaseFailed)
	nc, n := h.cycle(), h.node()
	if nc.Status.Reason != v1alpha1.ReasonRebootTimeout || !strings.Contains(nc.Status.Message, "until it runs a new boot") {
		t.Fatalf("reason %s message %q", nc.Status.Reason, nc.Status.Message)
	}
	if !n.Spec.Unschedulable || n.Annotations[v1alpha1.AnnotationCordonedBy] == "" || n.Annotations[v1alpha1.AnnotationRebootRequest] != id {
		t.Fatalf("the node was given back while its reboot may still come: unschedulable %t, annotations %v", n.Spec.Unschedulable, n.Annotations)
	}
}

func TestSoftPowerOffTimesOutIntoHardOff(t *testing.T) {
	h := newHarness(t)
	h.open(v1alpha1.StrategyPowerCycle)
	h.runUntil(v1alpha1.PhasePoweringOff)
	h.power.stuckOff = true
	h.settle()
	h.power.stuckOff = false // only a hard off works: the guest ignores soft
	h.power.state[testNode] = providers.PowerOn
	h.clock.Step(time.Minute)
	h.runUntil(v1alpha1.PhasePoweringOn)
	if h.power.calledWith("off-Hard") != 1 || h.cycle().Status.PowerOffMode != string(providers.OffHard) {
		t.Fatalf("calls %v, mode %s: want a hard off after the soft-off timeout", h.power.calls, h.cycle().Status.PowerOffMode)
	}
}

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

// powerCycled boots the node once its machine was powered on again.
func (h *harness) powerCycled() bool {
	if h.cycle().Status.Phase == v1alpha1.PhaseWaitingForNodeReady && h.power.calledWith("on") > 0 && nodesBoot(h) == "boot-1" {
		h.boot("boot-2")
		return true
	}
	return false
}

func (h *harness) replacementArrives() bool {
	if h.machine == "" || h.cycle().Status.Phase != v1alpha1.PhaseWaitingForReplacement {
		return false
	}
	var list clusterv1.MachineList
	if err := h.c.List(h.ctx, &list); err != nil || len(list.Items) > 0 {
		return false
	}
	h.clock.Step(time.Second)
	h.createMachine("worker-2-machine", "ms-1", "worker-2")
	h.create(testNodeObject("worker-2", "boot-9"))
	return true
}

// noop is a strategy known only to this test: it proves that a strategy
// is its own type plus a line in the table, and that the engine gives it
// the slot, the cordon, the drain, escalation and the uncordon.
type noop struct{ advances int }

const phaseNooping v1alpha1.Phase = "Nooping"

func (*noop) Name() v1alpha1.Strategy { return "noop" }
func (*noop) InPlace() bool           { return true }
func (*noop) Phases() []PhaseSpec {
	return []PhaseSpec{{Phase: phaseNooping, Reason: "Nooping"}}
}
func (*noop) Check(context.Context, *scope) (v1alpha1.Reason, error)  { return "", nil }
func (*noop) Start(s *scope)                                          { s.moveTo(phaseNooping, "Doing nothing") }
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

func TestBadInputEndsTheNodeCycleAndLeavesTheNodeAlone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(h *harness, nc *v1alpha1.NodeCycle)
		reason v1alpha1.Reason
	}{
		{"unknown strategy", func(_ *harness, nc *v1alpha1.NodeCycle) { nc.Spec.Strategies = []v1alpha1.Strategy{"rebuild"} }, v1alpha1.ReasonInvalidStrategy},
		{"replace without a Machine", func(_ *harness, nc *v1alpha1.NodeCycle) {
			nc.Spec.Strategies = []v1alpha1.Strategy{v1alpha1.StrategyReplace}
		}, v1alpha1.ReasonNotAClusterAPINode},
		{"power-cycle without settings", func(_ *harness, nc *v1alpha1.NodeCycle) {
			nc.Spec.Strategies, nc.Spec.PowerCycle = []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle}, nil
		}, v1alpha1.ReasonProviderError},
		{"unreachable BMC", func(h *harness, nc *v1alpha1.NodeCycle) {
			nc.Spec.Strategies = []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle}
			h.power.fail = errors.New("connection refused")
		}, v1alpha1.ReasonProviderError},
		{"bad maintenance window", func(_ *harness, nc *v1alpha1.NodeCycle) {
			nc.Spec.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Start: "25:00", End: "04:00"}}
		}, v1alpha1.ReasonInvalidMaintenanceWindow},
		// H1: stored before the CRD bounded durations.
		{"a stored duration that is not one", func(h *harness, nc *v1alpha1.NodeCycle) {
			if err := json.Unmarshal([]byte(`"9999999999h"`), &nc.Spec.Drain.Timeout); err != nil {
				h.t.Fatal(err)
			}
		}, v1alpha1.ReasonInvalidSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			nc := h.open()
			tc.edit(h, nc)
			if err := h.c.Update(h.ctx, nc); err != nil {
				t.Fatal(err)
			}
			h.runUntil(v1alpha1.PhaseFailed)
			got := h.cycle()
			if got.Status.Reason != tc.reason || got.Status.StartTime != nil {
				t.Errorf("reason %s (%s), slot taken %t; want %s and no slot", got.Status.Reason, got.Status.Message, got.Status.StartTime != nil, tc.reason)
			}
			if n := h.node(); n.Spec.Unschedulable || h.power.calledWith("off-Soft")+h.power.calledWith("off-Hard") > 0 {
				t.Error("the node was touched")
			}
		})
	}
}

func TestSlots(t *testing.T) {
	t.Run("a node cordoned by another NodeCycle holds the slot", func(t *testing.T) {
		h := newHarness(t)
		other := testNodeObject("worker-2", "boot-1")
		other.Spec.Unschedulable = true
		other.Annotations[v1alpha1.AnnotationCordonedBy] = testNamespace + "/worker-2-old"
		h.create(other)
		h.open()
		h.settle()
		nc := h.cycle()
		if nc.Status.Phase != v1alpha1.PhasePending || !strings.Contains(nc.Status.Message, "1 of 1 taken") {
			t.Fatalf("phase %s (%s), want Pending for a slot", nc.Status.Phase, nc.Status.Message)
		}
	})
	// Lower: an admin-cordoned node whose maintenance failed and that is
	// still down holds its slot, though nodecycle keeps no cordon on it.
	t.Run("a node down after a failure holds the slot whoever cordoned it", func(t *testing.T) {
		h := newHarness(t)
		other := testNodeObject("worker-2", "boot-1")
		other.Spec.Unschedulable = true // the admin's
		setCondition(other, corev1.NodeReady, corev1.ConditionFalse)
		h.create(other)
		started := metav1.NewMicroTime(h.clock.Now().Add(-time.Hour))
		h.create(&v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "worker-2-old"},
			Spec: v1alpha1.NodeCycleSpec{NodeName: "worker-2", BootID: "boot-1", Strategies: []v1alpha1.Strategy{v1alpha1.StrategyReboot}}})
		failed := &v1alpha1.NodeCycle{}
		_ = h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: "worker-2-old"}, failed)
		failed.Status = v1alpha1.NodeCycleStatus{Phase: v1alpha1.PhaseFailed, StartTime: &started, CompletionTime: &started, BootIDBefore: "boot-1"}
		if err := h.c.Status().Update(h.ctx, failed); err != nil {
			t.Fatal(err)
		}
		h.open()
		h.settle()
		if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhasePending || !strings.Contains(nc.Status.Message, "1 of 1 taken") {
			t.Fatalf("phase %s (%s), want Pending while worker-2 is down", nc.Status.Phase, nc.Status.Message)
		}
		h.editNode2("worker-2", func(n *corev1.Node) { setCondition(n, corev1.NodeReady, corev1.ConditionTrue) })
		h.clock.Step(time.Minute)
		h.settle()
		if p := h.cycle().Status.Phase; !p.Active() && p != v1alpha1.PhaseSucceeded {
			t.Fatalf("phase %s once worker-2 is Ready again", p)
		}
	})
	t.Run("a control-plane node waits for every other", func(t *testing.T) {
		h := newHarness(t)
		h.cfg.MaxConcurrent = 3
		h.restart()
		h.create(&v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "other"},
			Spec: v1alpha1.NodeCycleSpec{NodeName: "worker-2", Strategies: []v1alpha1.Strategy{v1alpha1.StrategyReboot}}})
		other := &v1alpha1.NodeCycle{}
		_ = h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: "other"}, other)
		other.Status.Phase = v1alpha1.PhaseDraining
		if err := h.c.Status().Update(h.ctx, other); err != nil {
			t.Fatal(err)
		}
		nc := h.open()
		nc.Spec.ControlPlane = true
		if err := h.c.Update(h.ctx, nc); err != nil {
			t.Fatal(err)
		}
		h.settle()
		if p := h.cycle().Status.Phase; p != v1alpha1.PhasePending {
			t.Fatalf("control-plane node in %s while another node holds a slot", p)
		}
	})
}

func TestGates(t *testing.T) {
	h := newHarness(t)
	nc := h.open()
	// Closed now (12:00 UTC), opens at 22:00.
	nc.Spec.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Start: "22:00", End: "04:00", TimeZone: "UTC"}}
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	res := h.settle()
	if got := h.cycle(); got.Status.Phase != v1alpha1.PhasePending || !strings.Contains(got.Status.Message, "Outside the maintenance windows") {
		t.Fatalf("phase %s (%s) outside the window", got.Status.Phase, got.Status.Message)
	}
	if res.RequeueAfter != 10*time.Hour {
		t.Errorf("requeue after %s, want 10h (when the window opens)", res.RequeueAfter)
	}
	h.clock.Step(res.RequeueAfter)
	h.settle()
	if p := h.cycle().Status.Phase; !p.Active() {
		t.Errorf("phase %s inside the window", p)
	}
}

// The NodeCycles that wait for a slot ask no server but the manager's
// cache: a blocking-alert gate is asked only once a slot is free.
func TestWaitingForASlotAsksNoAlertmanager(t *testing.T) {
	am, asked := quietAlertmanager(t)
	h := newHarness(t)
	other := testNodeObject("worker-2", "boot-1")
	other.Spec.Unschedulable = true
	other.Annotations[v1alpha1.AnnotationCordonedBy] = testNamespace + "/worker-2-old"
	h.create(other)
	nc := h.open()
	nc.Spec.BlockingAlerts = &v1alpha1.AlertGate{AlertmanagerURL: am.URL, Matchers: []string{`severity="critical"`}}
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		h.settle()
		h.clock.Step(slotPollInterval)
	}
	if n := asked(); n != 0 || h.cycle().Status.Phase != v1alpha1.PhasePending {
		t.Fatalf("Alertmanager asked %d times while no slot was free (phase %s)", n, h.cycle().Status.Phase)
	}
	if err := h.c.Delete(h.ctx, other); err != nil {
		t.Fatal(err)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	if asked() == 0 {
		t.Error("the alert gate was never asked once the slot was free")
	}
}

// The node says MaintenanceInProgress=False before its NodeCycle ends and
// frees the slot: the next node's True never overlaps it (a watch of the
// conditions saw two at once when the order was the other way round).
func TestTheConditionIsFalseBeforeTheSlotIsFreed(t *testing.T) {
	var overlap []string
	h := newHarness(t, withInterceptor(interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
		if err := c.SubResource(sub).Patch(ctx, obj, p, opts...); err != nil {
			return err
		}
		if nc, ok := obj.(*v1alpha1.NodeCycle); ok && nc.Status.Phase.Terminal() {
			n := &corev1.Node{}
			if err := c.Get(ctx, client.ObjectKey{Name: nc.Spec.NodeName}, n); err == nil {
				if cond := nodeCondition(n, v1alpha1.ConditionMaintenanceInProgress); cond == nil || cond.Status != corev1.ConditionFalse {
					overlap = append(overlap, string(nc.Status.Phase))
				}
			}
		}
		return nil
	}}))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	if len(overlap) > 0 {
		t.Fatalf("the NodeCycle ended (%v) while its node still said MaintenanceInProgress=True", overlap)
	}
}

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

func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// Lower: an admin who wants a node to stay cordoned after maintenance
// removes nodecycle.io/cordoned-by during it; the cordon is then theirs.
func TestRemovingNodecyclesCordonMarkKeepsTheCordon(t *testing.T) {
	h := newHarness(t)
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.editNode(func(n *corev1.Node) { delete(n.Annotations, v1alpha1.AnnotationCordonedBy) })
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	if n := h.node(); !n.Spec.Unschedulable {
		t.Fatal("the cordon the admin took over was lifted")
	}
	if msg := h.cycle().Status.Message; !strings.Contains(msg, "stays cordoned") {
		t.Errorf("message %q does not say the node stays cordoned", msg)
	}
}

// A node that came back on a new boot but never Ready fails its reboot
// and keeps nodecycle's cordon: it is uncordoned only once Ready.
func TestAFailedNodeThatIsNotReadyStaysCordoned(t *testing.T) {
	h := newHarness(t)
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.editNode(func(n *corev1.Node) {
		n.Status.NodeInfo.BootID = "boot-2"
		setCondition(n, corev1.NodeReady, corev1.ConditionFalse)
	})
	h.runUntil(v1alpha1.PhaseFailed)
	nc := h.cycle()
	if nc.Status.Reason != v1alpha1.ReasonRebootTimeout || !strings.Contains(nc.Status.Message, "not Ready and stays cordoned") {
		t.Fatalf("reason %s (%s), want RebootTimeout saying the node stays cordoned", nc.Status.Reason, nc.Status.Message)
	}
	if n := h.node(); !n.Spec.Unschedulable || n.Annotations[v1alpha1.AnnotationCordonedBy] == "" {
		t.Fatal("a node that is not Ready was uncordoned")
	}
}

// The alert gate fails closed: an Alertmanager that cannot be asked (down,
// or answering an error) holds the NodeCycle in Pending and says why; the
// node is not touched until an answer says no blocking alert fires.
func TestAnAlertmanagerThatCannotBeAskedHoldsMaintenance(t *testing.T) {
	var healthy atomic.Bool
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("[]"))
	}))
	defer am.Close()
	h := newHarness(t)
	nc := h.open()
	nc.Spec.BlockingAlerts = &v1alpha1.AlertGate{AlertmanagerURL: am.URL, Matchers: []string{`severity="critical"`}}
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h.settle()
		h.clock.Step(gatePollInterval)
	}
	got := h.cycle()
	if got.Status.Phase != v1alpha1.PhasePending || got.Status.StartTime != nil || !strings.Contains(got.Status.Message, "503") {
		t.Fatalf("phase %s (%s); want Pending, no slot, saying why", got.Status.Phase, got.Status.Message)
	}
	if h.node().Spec.Unschedulable {
		t.Fatal("the node was cordoned while the alerts could not be checked")
	}
	healthy.Store(true)
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
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
	if s := h.power.state[testNode]; s != providers.PowerOn {
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

// A step's save that loses to a conflict after the step acted (the cordon
// lifted) still tells it: the step done again from the NodeCycle as it was
// no longer sees its own cordon, and would say nothing.
func TestAnEventOfAStepWhoseSaveConflictedIsKept(t *testing.T) {
	conflicted := false
	h := newHarness(t, withInterceptor(interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
		if nc, ok := obj.(*v1alpha1.NodeCycle); ok && nc.Status.Phase.Terminal() && !conflicted {
			conflicted = true
			return apierrors.NewConflict(schema.GroupResource{Group: "nodecycle.io", Resource: "nodecycles"}, nc.Name, errors.New("the object has been modified"))
		}
		return c.SubResource(sub).Patch(ctx, obj, p, opts...)
	}}))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.reasons()
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	if got := h.reasons(); !conflicted || !slices.Contains(got, string(v1alpha1.ReasonUncordoned)) {
		t.Fatalf("conflict %t, Events %v: the uncordon is not told", conflicted, got)
	}
	if h.node().Spec.Unschedulable {
		t.Fatal("node left cordoned")
	}
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
	if s := h.power.state[testNode]; s != providers.PowerOn {
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

// N3: a NodeCycle of a namespace other than the manager's has the manager
// ask only the Alertmanagers the operator allowed (--alertmanager-urls):
// before, any URL was requested and its status code came back in the
// message.
func TestAnotherNamespaceAsksOnlyAllowedAlertmanagers(t *testing.T) {
	am, asked := quietAlertmanager(t)
	h := newHarness(t)
	h.cfg.Namespace = "operators" // the NodeCycle's namespace is a tenant's
	h.restart()
	nc := h.open()
	nc.Spec.BlockingAlerts = &v1alpha1.AlertGate{AlertmanagerURL: am.URL}
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h.settle()
		h.clock.Step(gatePollInterval)
	}
	if got := h.cycle(); asked() != 0 || got.Status.Phase != v1alpha1.PhasePending ||
		!strings.Contains(got.Status.Message, "may not be used by namespace "+testNamespace+": the manager's --alertmanager-urls allows none") {
		t.Fatalf("Alertmanager asked %d times; phase %s: %s", asked(), got.Status.Phase, got.Status.Message)
	}
	h.cfg.AlertmanagerURLs = []string{am.URL + "/"}
	h.restart()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	if asked() == 0 {
		t.Error("the allowed Alertmanager was never asked")
	}
}

// quietAlertmanager is an Alertmanager with no alert firing; asked says
// how often it was asked.
func quietAlertmanager(t *testing.T) (*httptest.Server, func() int32) {
	var asked atomic.Int32
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(am.Close)
	return am, asked.Load
}
