package nodecycle

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// daemonPod is a DaemonSet pod on the node, Ready since at (or not Ready
// when at is nil).
func daemonPod(name string, at *metav1.Time) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "cni", UID: "ds", Controller: ptrTo(true)}}},
		Spec: corev1.PodSpec{NodeName: testNode}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if at != nil {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: *at}}
	}
	return p
}

// With waitForPods, the rebooted node is uncordoned only once its
// DaemonSet pods are Ready on the new boot: a pod that shows Ready from
// before the maintenance does not count.
func TestUncordonWaitsForDaemonSetPods(t *testing.T) {
	h := newHarness(t)
	h.cfg.WaitForDaemonSetPods = true
	before := metav1.NewTime(h.clock.Now().Add(-time.Hour))
	h.create(daemonPod("cni-x", &before))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseWaitingForPods)
	h.settle()
	nc := h.cycle()
	if !strings.Contains(nc.Status.Message, "waiting for pods to be Ready: kube-system/cni-x") || !h.node().Spec.Unschedulable {
		t.Fatalf("message %q, cordoned %t", nc.Status.Message, h.node().Spec.Unschedulable)
	}
	if h.maintenanceReason() != string(v1alpha1.ReasonWaitingForPods) {
		t.Fatalf("condition reason %q", h.maintenanceReason())
	}
	// Its containers (and the agent's) started again on the new boot.
	h.settle()
	if h.cycle().Status.Phase != v1alpha1.PhaseWaitingForPods {
		t.Fatalf("phase %s before the pods were Ready again", h.cycle().Status.Phase)
	}
	var pods corev1.PodList
	if err := h.c.List(h.ctx, &pods); err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(h.clock.Now())}}
		if err := h.c.Status().Update(h.ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	h.runUntil(v1alpha1.PhaseSucceeded)
	if h.node().Spec.Unschedulable {
		t.Fatal("node left cordoned")
	}
}

// Pods that never become Ready fail the NodeCycle at the hook timeout; the
// node, Ready, is uncordoned.
func TestPodsNotReadyTimeout(t *testing.T) {
	h := newHarness(t)
	h.cfg.WaitForDaemonSetPods = true
	h.create(daemonPod("storage-x", nil))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseFailed)
	nc := h.cycle()
	if nc.Status.Reason != v1alpha1.ReasonPodsNotReady || !strings.Contains(nc.Status.Message, "kube-system/storage-x") || h.node().Spec.Unschedulable {
		t.Fatalf("ended %s: %q, cordoned %t", nc.Status.Reason, nc.Status.Message, h.node().Spec.Unschedulable)
	}
}
