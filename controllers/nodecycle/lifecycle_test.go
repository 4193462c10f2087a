package nodecycle

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// Kubernetes' node lifecycle conditions follow the NodeCycle:
// MaintenancePlanned while it waits (saying for what), DrainInProgress while
// the drain runs (its heartbeat rewritten while nothing else changes),
// Drained from the end of the drain, and all of them False at the end.
func TestLifecycleConditions(t *testing.T) {
	h := newHarness(t)
	h.cfg.Freezes = []v1alpha1.Freeze{{Start: epoch.Add(-time.Minute).Format(time.RFC3339), End: epoch.Add(time.Hour).Format(time.RFC3339), Reason: "release"}}
	h.restart()
	h.create(workloadPod("stuck", testNode, "demo/keep"))
	h.open()
	res := h.settle()
	h.wantConditions("waiting", "True/Frozen", "False/MaintenancePending", "False/MaintenancePending", "False/MaintenancePending")
	if c := nodes.Condition(h.node(), v1alpha1.ConditionMaintenancePlanned); !strings.Contains(c.Message, "frozen until") {
		t.Errorf("MaintenancePlanned's message %q does not say until when", c.Message)
	}

	h.clock.Step(res.RequeueAfter)
	h.runUntil(v1alpha1.PhaseDraining)
	h.settle()
	h.wantConditions("draining", "False/MaintenanceStarted", "True/Draining", "False/Draining", "True/Draining")
	h.clock.Step(messageRefresh) // the drain's latest message is written
	h.settle()
	draining := nodes.Condition(h.node(), v1alpha1.ConditionDrainInProgress)
	if !strings.Contains(draining.Message, "demo/stuck") {
		t.Errorf("DrainInProgress's message %q does not name the pod left", draining.Message)
	}
	h.clock.Step(drainHeartbeat - time.Second)
	h.reconcile()
	if got := nodes.Condition(h.node(), v1alpha1.ConditionDrainInProgress); got.Message != draining.Message || !got.LastHeartbeatTime.Equal(&draining.LastHeartbeatTime) {
		t.Fatalf("DrainInProgress rewritten with nothing new: %q at %s", got.Message, got.LastHeartbeatTime)
	}
	h.clock.Step(time.Second)
	h.reconcile()
	if got := nodes.Condition(h.node(), v1alpha1.ConditionDrainInProgress).LastHeartbeatTime; !got.After(draining.LastHeartbeatTime.Time) {
		t.Errorf("DrainInProgress's heartbeat %s not rewritten after %s", got, drainHeartbeat)
	}

	pod := &corev1.Pod{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: "demo", Name: "stuck"}, pod); err == nil {
		pod.Finalizers = nil
		if err := h.c.Update(h.ctx, pod); err != nil {
			t.Fatal(err)
		}
		_ = h.c.Delete(h.ctx, pod)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.settle()
	h.wantConditions("rebooting", "False/MaintenanceStarted", "False/Drained", "True/Drained", "True/WaitingForNodeReady")

	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	h.wantConditions("done", "False/MaintenanceCompleted", "False/MaintenanceCompleted", "False/MaintenanceCompleted", "False/MaintenanceCompleted")
	// A patch leaves out an empty message: each condition says the end, not
	// what it said while True.
	for _, typ := range nodes.LifecycleConditions {
		if c := nodes.Condition(h.node(), typ); c.Message != h.cycle().Status.Message {
			t.Errorf("%s's message at the end: %q", typ, c.Message)
		}
	}
}

// wantConditions checks the node's MaintenancePlanned, DrainInProgress,
// Drained and MaintenanceInProgress, each as "Status/Reason".
func (h *harness) wantConditions(when string, want ...string) {
	h.t.Helper()
	n := h.node()
	for i, t := range nodes.LifecycleConditions {
		got := "absent"
		if c := nodes.Condition(n, t); c != nil {
			got = string(c.Status) + "/" + c.Reason
		}
		if got != want[i] {
			h.t.Errorf("%s: %s is %s, want %s", when, t, got, want[i])
		}
	}
}

// A MachineHealthCheck is let back on the Machine (skip-remediation lifted)
// only once the node's conditions say the maintenance ended, and
// cycles.RemediationResumeDelay after: one that counts
// MaintenanceInProgress or Drained as unhealthy must not find them True,
// long past its timeout, without nodecycle's skip-remediation (its cache of
// the node may lag its cache of the Machine).
func TestRemediationResumesAfterTheConditionsEnd(t *testing.T) {
	h := newHarness(t, withMachine())
	resumes := 0
	h.resumed = func() {
		resumes++
		if nodes.InMaintenance(h.node()) {
			t.Errorf("remediation resumed while the node's conditions say maintenance: %s", lifecycleOf(h.node()))
		}
		if done := h.cycle().Status.CompletionTime; done == nil || h.clock.Since(done.Time) < cycles.RemediationResumeDelay {
			t.Errorf("remediation resumed %v after the end, before %s", done, cycles.RemediationResumeDelay)
		}
	}
	h.restart()
	h.createMachine(testMachine, "ms-1", "")
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	res := h.reconcile()
	if resumes != 0 || res.RequeueAfter != cycles.RemediationResumeDelay {
		t.Fatalf("resumed %d times at the end; requeued after %s", resumes, res.RequeueAfter)
	}
	h.clock.Step(res.RequeueAfter)
	h.reconcile()
	if resumes != 1 {
		t.Fatalf("the remediation resumed %d times after the delay", resumes)
	}
}

func lifecycleOf(n *corev1.Node) string {
	var out []string
	for _, typ := range nodes.LifecycleConditions {
		if c := nodes.Condition(n, typ); c != nil {
			out = append(out, fmt.Sprintf("%s=%s", typ, c.Status))
		}
	}
	return strings.Join(out, " ")
}

// The node's lifecycle conditions say the maintenance ended before the
// save that ends the NodeCycle and frees its slot: the next node's
// MaintenanceInProgress=True never overlaps this one's.
func TestConditionsEndBeforeTheSlotIsFreed(t *testing.T) {
	var h *harness
	ends := 0
	h = newHarness(t, withInterceptor(interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
		if nc, ok := obj.(*v1alpha1.NodeCycle); ok && nc.Status.Phase.Terminal() {
			ends++
			if nodes.InMaintenance(h.node()) {
				t.Errorf("NodeCycle ended %s while the node's conditions say maintenance: %s", nc.Status.Phase, lifecycleOf(h.node()))
			}
		}
		return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
	}}))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	if ends == 0 {
		t.Fatal("the NodeCycle's end was never saved through a status patch")
	}
}
