package nodecycle

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// nodecycle.io/paused on the manager's Namespace holds new maintenance,
// with who and why in the message; removed, the maintenance goes on.
func TestPauseAll(t *testing.T) {
	h := newHarness(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace, Annotations: map[string]string{v1alpha1.AnnotationPaused: "alice: change freeze"}}}
	h.create(ns)
	h.open()
	h.settle()
	if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhasePending || nc.Status.Message != "Waiting: paused, namespace nodecycle-system: alice: change freeze" {
		t.Fatalf("phase %s: %q", nc.Status.Phase, nc.Status.Message)
	}
	delete(ns.Annotations, v1alpha1.AnnotationPaused)
	if err := h.c.Update(h.ctx, ns); err != nil {
		t.Fatal(err)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
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
	h.settle()
	if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhasePending || nc.Status.Message != "Waiting: paused, policy workers: bob: waiting for the storage upgrade" {
		t.Fatalf("phase %s: %q", nc.Status.Phase, nc.Status.Message)
	}
	delete(policy.Annotations, v1alpha1.AnnotationPaused)
	if err := h.c.Update(h.ctx, policy); err != nil {
		t.Fatal(err)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)

	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace, Annotations: map[string]string{v1alpha1.AnnotationPaused: "alice: stop"}}})
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
}
