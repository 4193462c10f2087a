package nodecycle

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

func (h *harness) setAnnotation(key string, value *string) {
	h.editNode(func(n *corev1.Node) {
		if value == nil {
			delete(n.Annotations, key)
			return
		}
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[key] = *value
	})
}

func (h *harness) maintenanceReason() string {
	c := nodes.Condition(h.node(), v1alpha1.ConditionMaintenanceInProgress)
	if c == nil {
		return ""
	}
	return c.Reason
}

// A pre-reboot hook holds the reboot of the drained node, named in the
// message and the condition, until its owner removes it.
func TestPreRebootHookHoldsTheReboot(t *testing.T) {
	for _, ladder := range [][]v1alpha1.Strategy{{v1alpha1.StrategyReboot}, {v1alpha1.StrategyPowerCycle}} {
		t.Run(string(ladder[0]), func(t *testing.T) {
			h := newHarness(t)
			h.setAnnotation(v1alpha1.PrefixPreRebootHook+"rook-ceph", ptrTo(""))
			h.setAnnotation(v1alpha1.PrefixPreRebootHook+"postgres", ptrTo("moving primary"))
			h.open(ladder...)
			h.runUntil(v1alpha1.PhaseWaitingForPreRebootHooks)
			res := h.settle()
			nc, n := h.cycle(), h.node()
			if nc.Status.Phase != v1alpha1.PhaseWaitingForPreRebootHooks || !strings.Contains(nc.Status.Message, "postgres, rook-ceph") {
				t.Fatalf("phase %s, message %q", nc.Status.Phase, nc.Status.Message)
			}
			if _, ok := n.Annotations[v1alpha1.AnnotationRebootRequest]; ok || len(h.power.calls) > 0 || !n.Spec.Unschedulable {
				t.Fatalf("acted while a hook is held: request %v, power calls %v, cordoned %t", n.Annotations, h.power.calls, n.Spec.Unschedulable)
			}
			if h.maintenanceReason() != string(v1alpha1.ReasonWaitingForHooks) || res.RequeueAfter != 30*time.Minute {
				t.Fatalf("condition reason %q, requeue %s", h.maintenanceReason(), res.RequeueAfter)
			}
			h.setAnnotation(v1alpha1.PrefixPreRebootHook+"rook-ceph", nil)
			h.settle()
			if !strings.Contains(h.cycle().Status.Message, "postgres") || strings.Contains(h.cycle().Status.Message, "rook-ceph") {
				t.Fatalf("message %q after rook-ceph released", h.cycle().Status.Message)
			}
			h.setAnnotation(v1alpha1.PrefixPreRebootHook+"postgres", nil)
			h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
			h.boot("boot-2")
			h.runUntil(v1alpha1.PhaseSucceeded)
		})
	}
}

// A pre-reboot hook still held at the hook timeout fails the NodeCycle:
// nothing rebooted, the node uncordoned.
func TestPreRebootHookTimeout(t *testing.T) {
	h := newHarness(t)
	h.setAnnotation(v1alpha1.PrefixPreRebootHook+"slow", ptrTo(""))
	h.open()
	h.runUntil(v1alpha1.PhaseFailed)
	nc, n := h.cycle(), h.node()
	if nc.Status.Reason != v1alpha1.ReasonPreRebootHookTimeout || !strings.Contains(nc.Status.Message, "slow") {
		t.Fatalf("ended %s: %q", nc.Status.Reason, nc.Status.Message)
	}
	if n.Spec.Unschedulable || n.Annotations[v1alpha1.AnnotationRebootRequest] != "" || nodes.BootID(n) != "boot-1" {
		t.Fatalf("node cordoned %t, request %q, boot %s", n.Spec.Unschedulable, n.Annotations[v1alpha1.AnnotationRebootRequest], nodes.BootID(n))
	}
	if d := nc.Status.CompletionTime.Sub(nc.Status.StartTime.Time); d < 30*time.Minute {
		t.Fatalf("failed after %s, before the 30m hook timeout", d)
	}
}

// rebootedWithPostRebootHook is a NodeCycle whose node rebooted and holds
// the post-reboot hook ceph-health.
func rebootedWithPostRebootHook(t *testing.T) *harness {
	h := newHarness(t)
	h.setAnnotation(v1alpha1.PrefixPostRebootHook+"ceph-health", ptrTo(""))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	return h
}

// A post-reboot hook keeps the rebooted node cordoned until released.
func TestPostRebootHookHoldsTheUncordon(t *testing.T) {
	h := rebootedWithPostRebootHook(t)
	h.runUntil(v1alpha1.PhaseWaitingForPostRebootHooks)
	h.settle()
	if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhaseWaitingForPostRebootHooks || !h.node().Spec.Unschedulable ||
		!strings.Contains(nc.Status.Message, "ceph-health") || nc.Status.BootIDAfter != "boot-2" {
		t.Fatalf("phase %s, cordoned %t, message %q", nc.Status.Phase, h.node().Spec.Unschedulable, nc.Status.Message)
	}
	h.setAnnotation(v1alpha1.PrefixPostRebootHook+"ceph-health", nil)
	h.runUntil(v1alpha1.PhaseSucceeded)
	if h.node().Spec.Unschedulable {
		t.Fatal("node left cordoned after its post-reboot hook was released")
	}
}

// A post-reboot hook still held at the timeout fails the NodeCycle and
// keeps the node cordoned.
func TestPostRebootHookTimeoutKeepsTheCordon(t *testing.T) {
	h := rebootedWithPostRebootHook(t)
	h.runUntil(v1alpha1.PhaseFailed)
	nc, n := h.cycle(), h.node()
	if nc.Status.Reason != v1alpha1.ReasonPostRebootHookTimeout || !strings.Contains(nc.Status.Message, "stays cordoned") {
		t.Fatalf("ended %s: %q", nc.Status.Reason, nc.Status.Message)
	}
	if !n.Spec.Unschedulable || n.Annotations[v1alpha1.AnnotationCordonedBy] == "" {
		t.Fatal("the node was uncordoned while a post-reboot hook is held")
	}
}

// The policy's hook labels go on with the cordon and come off with the
// uncordon; a label the node already had stays.
func TestHookLabels(t *testing.T) {
	h := newHarness(t)
	h.editNode(func(n *corev1.Node) { n.Labels = map[string]string{"team": "storage"} })
	nc := h.cfg.CycleSpec(testNode, &v1alpha1.NodeCyclePolicy{Spec: v1alpha1.NodeCyclePolicySpec{
		Hooks: &v1alpha1.HookSpec{Labels: map[string]string{"maintenance.example.com/reboot": "true", "team": "other"}}}})
	if nc.Hooks == nil || nc.Hooks.Timeout == nil || nc.Hooks.Timeout.Duration != 30*time.Minute {
		t.Fatalf("hooks copied as %+v", nc.Hooks)
	}
	h.open()
	cycle := h.cycle() // with the policy's hooks
	cycle.Spec.Hooks = nc.Hooks
	if err := h.c.Update(h.ctx, cycle); err != nil {
		t.Fatal(err)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	n := h.node()
	if n.Labels["maintenance.example.com/reboot"] != "true" || n.Labels["team"] != "storage" ||
		n.Annotations[v1alpha1.AnnotationMaintenanceLabels] != "maintenance.example.com/reboot" {
		t.Fatalf("labels %v, annotations %v during maintenance", n.Labels, n.Annotations)
	}
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	n = h.node()
	if _, ok := n.Labels["maintenance.example.com/reboot"]; ok || n.Labels["team"] != "storage" || n.Annotations[v1alpha1.AnnotationMaintenanceLabels] != "" {
		t.Fatalf("labels %v, annotations %v after the uncordon", n.Labels, n.Annotations)
	}
}

// deleteAfterTimeout: at the drain timeout the pods a PodDisruptionBudget
// still protects are deleted (a Warning Event names them) and the reboot
// goes on, instead of failing DrainTimeout.
func TestDeleteAfterDrainTimeout(t *testing.T) {
	h := newHarness(t, pdbBlocks("guarded"))
	h.cfg.Drain.DeleteAfterTimeout = true
	h.create(workloadPod("guarded", testNode))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: "demo", Name: "guarded"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the guarded pod is still there: %v", err)
	}
	if got := h.reasons(); !slices.Contains(got, string(v1alpha1.ReasonPodsDeleted)) || slices.Contains(got, string(v1alpha1.ReasonDrainTimeout)) {
		t.Fatalf("Events %v", got)
	}
	if d := h.clock.Since(h.cycle().Status.StartTime.Time); d < h.cfg.Drain.Timeout.Duration {
		t.Fatalf("deleted after %s, before the drain timeout", d)
	}
}
