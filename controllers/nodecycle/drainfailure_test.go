package nodecycle

import (
	"context"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// pdbBlocks makes the API server refuse, as a PodDisruptionBudget that
// allows no disruption does, every eviction of the named pods.
func pdbBlocks(names ...string) option {
	return withInterceptor(interceptor.Funcs{SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj client.Object, s client.Object, opts ...client.SubResourceCreateOption) error {
		if slices.Contains(names, obj.GetName()) {
			return apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
		}
		return c.SubResource(sub).Create(ctx, obj, s, opts...)
	}})
}

// A reboot is never requested while a pod the drain removed is still on
// the node: deleteAfterTimeout waits for the pods it deleted to go (here a
// finalizer holds one), and fails DrainTimeout when they are still there a
// drain timeout later.
func TestDeleteAfterTimeoutWaitsForTheDeletedPods(t *testing.T) {
	for _, released := range []bool{true, false} {
		h := newHarness(t, pdbBlocks("guarded"))
		h.cfg.Drain.DeleteAfterTimeout = true
		h.restart()
		h.create(workloadPod("guarded", testNode, "example.com/flush"))
		h.open()
		h.runUntil(v1alpha1.PhaseDraining)
		h.clock.Step(h.cfg.Drain.Timeout.Duration)
		for range 5 {
			h.settle()
			h.clock.Step(drainPollInterval)
		}
		if p := h.pod("demo", "guarded"); p.DeletionTimestamp == nil {
			t.Fatal("the pod left at the drain timeout was not deleted")
		}
		nc, n := h.cycle(), h.node()
		if nc.Status.Phase != v1alpha1.PhaseDraining || n.Annotations[v1alpha1.AnnotationRebootRequest] != "" {
			t.Fatalf("phase %s, reboot request %q while the deleted pod is still on the node", nc.Status.Phase, n.Annotations[v1alpha1.AnnotationRebootRequest])
		}
		if !strings.Contains(nc.Status.Message, "demo/guarded") {
			t.Errorf("message %q does not name the pod it waits for", nc.Status.Message)
		}
		if !released {
			h.runUntil(v1alpha1.PhaseFailed)
			if nc := h.cycle(); nc.Status.Reason != v1alpha1.ReasonDrainTimeout || !strings.Contains(nc.Status.Message, "still on the node") {
				t.Fatalf("reason %s (%s), want DrainTimeout naming the pod still there", nc.Status.Reason, nc.Status.Message)
			}
			continue
		}
		p := h.pod("demo", "guarded")
		p.Finalizers = nil
		if err := h.c.Update(h.ctx, p); err != nil {
			t.Fatal(err)
		}
		h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	}
}

// drainFailure LeaveCordoned: the drain that cannot finish fails the
// NodeCycle, the node keeps nodecycle's cordon (a Warning Event says so)
// and no reboot is asked.
func TestLeaveCordonedKeepsTheCordon(t *testing.T) {
	h := newHarness(t, pdbBlocks("guarded"))
	h.cfg.Drain.Failure = v1alpha1.DrainFailureLeaveCordoned
	h.restart()
	h.create(workloadPod("guarded", testNode))
	h.open()
	h.runUntil(v1alpha1.PhaseFailed)
	nc, n := h.cycle(), h.node()
	if nc.Status.Reason != v1alpha1.ReasonDrainTimeout || !strings.Contains(nc.Status.Message, "LeaveCordoned") {
		t.Fatalf("reason %s (%s)", nc.Status.Reason, nc.Status.Message)
	}
	if !n.Spec.Unschedulable || n.Annotations[v1alpha1.AnnotationCordonedBy] == "" || n.Annotations[v1alpha1.AnnotationRebootRequest] != "" {
		t.Fatalf("unschedulable %t, annotations %v: want nodecycle's cordon kept and no reboot request", n.Spec.Unschedulable, n.Annotations)
	}
	if !slices.Contains(h.reasons(), string(v1alpha1.ReasonLeftCordoned)) {
		t.Errorf("Events %v: no LeftCordoned", h.reasons())
	}
}

// drainFailure Uncordon and SkipNode give the node back at once; SkipNode
// says it will not be tried again on this boot.
func TestFailedDrainGivesTheNodeBack(t *testing.T) {
	for _, action := range []v1alpha1.DrainFailureAction{"", v1alpha1.DrainFailureUncordon, v1alpha1.DrainFailureSkipNode} {
		h := newHarness(t, pdbBlocks("guarded"))
		h.cfg.Drain.Failure = action
		h.restart()
		h.create(workloadPod("guarded", testNode))
		h.open()
		h.runUntil(v1alpha1.PhaseFailed)
		nc, n := h.cycle(), h.node()
		if n.Spec.Unschedulable || slices.Contains(h.reasons(), string(v1alpha1.ReasonLeftCordoned)) {
			t.Fatalf("%q: the node was not given back", action)
		}
		if skip := strings.Contains(nc.Status.Message, "not tried again on boot boot-1"); skip != (action == v1alpha1.DrainFailureSkipNode) {
			t.Errorf("%q: message %q", action, nc.Status.Message)
		}
	}
}
