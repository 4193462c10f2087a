package nodecycle

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// nodecycle.io/paused on the manager's Namespace holds new maintenance,
// with who and why in the message; removed, the maintenance goes on.
func TestPauseAll(t *testing.T) {
	h := newHarness(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace, Annotations: map[string]string{v1alpha1.AnnotationPaused: "alice: change freeze"}}}
	h.create(ns)
	h.open()
	h.expectPausedThenResume(ns, "Waiting: paused, namespace nodecycle-system: alice: change freeze")
}

// A pause on a policy holds its nodes; a pause never stops a maintenance
// that has started.
func TestPausePolicyAndNotHalfWay(t *testing.T) {
	h := newHarness(t)
	policy := &v1alpha1.NodeCyclePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "workers",
		Annotations: map[string]string{v1alpha1.AnnotationPaused: "bob: waiting for the storage upgrade"}}}
	h.create(policy)
	h.open()
	nc := h.cycle()
	nc.Spec.Policy = "workers"
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	h.expectPausedThenResume(policy, "Waiting: paused, policy workers: bob: waiting for the storage upgrade")

	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace, Annotations: map[string]string{v1alpha1.AnnotationPaused: "alice: stop"}}})
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
}

// expectPausedThenResume checks that the NodeCycle waits with message, then
// removes the pause from paused and sees the maintenance go on.
func (h *harness) expectPausedThenResume(paused client.Object, message string) {
	h.t.Helper()
	h.settle()
	if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhasePending || nc.Status.Message != message {
		h.t.Fatalf("phase %s: %q", nc.Status.Phase, nc.Status.Message)
	}
	a := paused.GetAnnotations()
	delete(a, v1alpha1.AnnotationPaused)
	paused.SetAnnotations(a)
	if err := h.c.Update(h.ctx, paused); err != nil {
		h.t.Fatal(err)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
}
