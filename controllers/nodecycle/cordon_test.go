package nodecycle

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

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

// drain.evictionRequests Always on a cluster that does not serve
// EvictionRequests fails the drain at once, naming what to turn on, and
// evicts nothing; the node is given back.
func TestAlwaysRefusesAClusterWithoutEvictionRequests(t *testing.T) {
	h := newHarness(t)
	h.cfg.Drain.EvictionRequests = v1alpha1.EvictionRequestsAlways
	h.create(workloadPod("web-1", testNode))
	h.open()
	h.runUntil(v1alpha1.PhaseFailed)
	nc := h.cycle()
	if nc.Status.Reason != v1alpha1.ReasonDrainRefused || !strings.Contains(nc.Status.Message, "does not serve lifecycle.k8s.io/v1alpha1 EvictionRequests (feature gate EvictionRequestAPI") {
		t.Fatalf("reason %s, message %q: want DrainRefused naming the gate", nc.Status.Reason, nc.Status.Message)
	}
	if slices.Contains(h.reasons(), string(v1alpha1.ReasonEvicted)) || h.node().Spec.Unschedulable {
		t.Fatalf("reasons %v, unschedulable %t: want nothing evicted and the node given back", h.reasons(), h.node().Spec.Unschedulable)
	}
	if len(nc.Finalizers) != 0 {
		t.Fatalf("finalizers %v", nc.Finalizers)
	}
}

// I5: a drain step that keeps failing (the node's pods cannot be listed)
// still ends at the drain timeout: the node is given back and the slot
// freed, instead of retrying forever under the cordon.
func TestDrainTimeoutHoldsWhateverTheErrors(t *testing.T) {
	failing := false
	h := newHarness(t, withInterceptor(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if _, pods := list.(*corev1.PodList); pods && failing {
			return apierrors.NewInternalError(errors.New("etcdserver: request timed out"))
		}
		return c.List(ctx, list, opts...)
	}}))
	h.create(workloadPod("web-1", testNode))
	h.open()
	h.runUntil(v1alpha1.PhaseDraining)
	failing = true
	// Each failed step is retried (the controller's back-off); the clock
	// moves a minute between retries.
	for i := 0; i < 100 && h.cycle().Status.Phase == v1alpha1.PhaseDraining; i++ {
		if _, err := h.r.Reconcile(h.ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: testNamespace, Name: testCycle}}); err == nil && h.cycle().Status.Phase == v1alpha1.PhaseDraining {
			t.Fatal("a failing step reported no error before the timeout")
		}
		h.clock.Step(time.Minute)
	}
	h.runUntil(v1alpha1.PhaseFailed)
	nc := h.cycle()
	if nc.Status.Reason != v1alpha1.ReasonDrainTimeout || !strings.Contains(nc.Status.Message, "its last step failed") || h.node().Spec.Unschedulable {
		t.Fatalf("reason %s %q, node unschedulable %t: want DrainTimeout naming the error and the node given back", nc.Status.Reason, nc.Status.Message, h.node().Spec.Unschedulable)
	}
}
