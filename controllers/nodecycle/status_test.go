package nodecycle

import (
	"context"
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

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

func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
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
