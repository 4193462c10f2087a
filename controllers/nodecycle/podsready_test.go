package nodecycle

import (
	"slices"
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

// By default, the rebooted node is uncordoned only once its DaemonSet
// pods are Ready on the new boot: a pod that shows Ready from before the
// maintenance does not count.
func TestUncordonWaitsForDaemonSetPods(t *testing.T) {
	h := newHarness(t)
	before := metav1.NewTime(h.clock.Now().Add(-time.Hour))
	h.create(daemonPod("cni-x", &before))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseWaitingForPods)
	h.settle()
	nc := h.cycle()
	if !strings.Contains(nc.Status.Message, "waiting for pods to be Ready: kube-system/cni-x (timeout 10m0s)") || !h.node().Spec.Unschedulable {
		t.Fatalf("message %q, cordoned %t", nc.Status.Message, h.node().Spec.Unschedulable)
	}
	if h.maintenanceReason() != string(v1alpha1.ReasonWaitingForPods) {
		t.Fatalf("condition reason %q", h.maintenanceReason())
	}
	h.settle()
	if h.cycle().Status.Phase != v1alpha1.PhaseWaitingForPods {
		t.Fatalf("phase %s before the pods were Ready again", h.cycle().Status.Phase)
	}
	// Its containers started again on the new boot.
	setPodReady(h, h.pod("kube-system", "cni-x"), corev1.ConditionTrue)
	h.runUntil(v1alpha1.PhaseSucceeded)
	if h.node().Spec.Unschedulable {
		t.Fatal("node left cordoned")
	}
}

// Pods that went unready with the reboot and never become Ready again fail
// the NodeCycle at the wait's timeout; the node, Ready, is uncordoned.
func TestPodsNotReadyTimeout(t *testing.T) {
	h := newHarness(t)
	before := metav1.NewTime(h.clock.Now().Add(-time.Hour))
	h.create(daemonPod("storage-x", &before))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	setPodReady(h, h.pod("kube-system", "storage-x"), corev1.ConditionFalse) // crash-looping on the new boot
	h.runUntil(v1alpha1.PhaseFailed)
	nc := h.cycle()
	if nc.Status.Reason != v1alpha1.ReasonPodsNotReady || !strings.Contains(nc.Status.Message, "after 10m0s: waited for pods to be Ready: kube-system/storage-x") || h.node().Spec.Unschedulable {
		t.Fatalf("ended %s: %q, cordoned %t", nc.Status.Reason, nc.Status.Message, h.node().Spec.Unschedulable)
	}
}

// A DaemonSet pod that was not Ready when the maintenance began (a broken
// image, say) is not waited for: it did not serve before either.
func TestAPodNotReadyBeforeTheMaintenanceIsNotWaitedFor(t *testing.T) {
	h := newHarness(t)
	before := metav1.NewTime(h.clock.Now().Add(-time.Hour))
	broken := daemonPod("broken-x", nil)
	broken.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: before}}
	h.create(broken)
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	if got := phasesVisited(h.cycle()); slices.Contains(got, v1alpha1.PhaseWaitingForPods) {
		t.Fatalf("waited for a pod that was not Ready before the maintenance: %v", got)
	}
}

// A startup taint (a CNI's, a cloud provider's, a NodeReadinessRule's by
// its prefix) keeps the rebooted node cordoned until it is gone.
func TestUncordonWaitsForStartupTaints(t *testing.T) {
	h := newHarness(t)
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	h.editNode(func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints,
			corev1.Taint{Key: "node.kubernetes.io/network-unavailable", Effect: corev1.TaintEffectNoSchedule},
			corev1.Taint{Key: "readiness.k8s.io/storage-ready", Effect: corev1.TaintEffectNoSchedule},
			corev1.Taint{Key: "example.com/unrelated", Effect: corev1.TaintEffectNoSchedule})
	})
	h.runUntil(v1alpha1.PhaseWaitingForPods)
	h.settle()
	want := "waiting for startup taints to be removed: node.kubernetes.io/network-unavailable, readiness.k8s.io/storage-ready"
	if msg := h.cycle().Status.Message; !strings.Contains(msg, want) || !h.node().Spec.Unschedulable {
		t.Fatalf("message %q, want %q; cordoned %t", msg, want, h.node().Spec.Unschedulable)
	}
	h.editNode(func(n *corev1.Node) { n.Spec.Taints = n.Spec.Taints[1:] })
	h.settle()
	if msg := h.cycle().Status.Message; !strings.Contains(msg, "removed: readiness.k8s.io/storage-ready (") {
		t.Fatalf("message %q", msg)
	}
	h.editNode(func(n *corev1.Node) { n.Spec.Taints = n.Spec.Taints[1:] })
	h.runUntil(v1alpha1.PhaseSucceeded)
	if n := h.node(); n.Spec.Unschedulable || len(n.Spec.Taints) != 1 {
		t.Fatalf("cordoned %t, taints %v", n.Spec.Unschedulable, n.Spec.Taints)
	}
}

// A startup taint that was on the node when the maintenance began (a
// NodeReadinessRule that never passed, the API server's not-ready taint
// where no node lifecycle controller runs) does not hold it after the
// reboot: it served with it before.
func TestAStartupTaintFromBeforeTheMaintenanceIsNotWaitedFor(t *testing.T) {
	h := newHarness(t)
	h.editNode(func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "readiness.k8s.io/gpu-ready", Effect: corev1.TaintEffectNoSchedule})
	})
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	if got := h.cycle().Status.StartupTaintsAtStart; !slices.Equal(got, []string{"readiness.k8s.io/gpu-ready"}) {
		t.Fatalf("startupTaintsAtStart %q", got)
	}
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	if got := phasesVisited(h.cycle()); slices.Contains(got, v1alpha1.PhaseWaitingForPods) {
		t.Fatalf("waited for a taint the node had before the maintenance: %v", got)
	}
}

// A startup taint that stays fails the NodeCycle StartupTaintsNotRemoved at
// the timeout; the node is uncordoned (the taint keeps pods away).
func TestStartupTaintsTimeout(t *testing.T) {
	h := newHarness(t)
	h.cfg.PodsReadyTimeout = 3 * time.Minute
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	h.editNode(func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "node.cloudprovider.kubernetes.io/uninitialized", Effect: corev1.TaintEffectNoSchedule})
	})
	h.runUntil(v1alpha1.PhaseFailed)
	nc := h.cycle()
	if nc.Status.Reason != v1alpha1.ReasonStartupTaintsNotRemoved || !strings.Contains(nc.Status.Message, "after 3m0s: waited for startup taints to be removed: node.cloudprovider.kubernetes.io/uninitialized") || h.node().Spec.Unschedulable {
		t.Fatalf("ended %s: %q, cordoned %t", nc.Status.Reason, nc.Status.Message, h.node().Spec.Unschedulable)
	}
}

// With the wait turned off (--wait-for-daemonset-pods=false,
// --startup-taints=), the node is uncordoned right after the proof.
func TestNoWaitForPodsWhenTurnedOff(t *testing.T) {
	h := newHarness(t)
	h.cfg.WaitForDaemonSetPods, h.cfg.StartupTaints = false, nil
	before := metav1.NewTime(h.clock.Now().Add(-time.Hour))
	h.create(daemonPod("cni-x", &before))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	if h.cycle().Spec.WaitForPods != nil {
		t.Fatalf("spec.waitForPods %+v", h.cycle().Spec.WaitForPods)
	}
}
