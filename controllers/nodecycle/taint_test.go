package nodecycle

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// taintWhileWaiting: a node that waits for a slot carries the
// PreferNoSchedule taint; the cordon takes it off, and so does an end
// without a start.
func TestTaintWhileWaiting(t *testing.T) {
	for _, tc := range []struct {
		name  string
		taint bool
		// end: the NodeCycle ends before it starts (no reboot needed any more).
		end bool
		// adminCordon: an admin cordons the node while it waits.
		adminCordon bool
	}{
		{name: "off by default"},
		{name: "tainted while waiting, off with the cordon", taint: true},
		{name: "tainted while waiting, off when it ends unstarted", taint: true, end: true},
		{name: "tainted while waiting, off when the node was cordoned by an admin", taint: true, adminCordon: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.cfg.TaintWaitingNodes = tc.taint
			h.restart()
			other := testNodeObject("worker-2", "boot-1")
			other.Spec.Unschedulable = true
			other.Annotations[v1alpha1.AnnotationCordonedBy] = testNamespace + "/worker-2-old"
			h.create(other)
			h.open()
			h.settle()
			if p := h.cycle().Status.Phase; p != v1alpha1.PhasePending {
				t.Fatalf("phase %s, want Pending for the slot", p)
			}
			if got := nodes.HasWaitingTaint(h.node()); got != tc.taint {
				t.Fatalf("waiting node tainted: %v, want %v", got, tc.taint)
			}
			if tc.end {
				h.editNode(func(n *corev1.Node) { setCondition(n, v1alpha1.ConditionRebootRequired, corev1.ConditionFalse) })
				h.settle()
				if p := h.cycle().Status.Phase; p != v1alpha1.PhaseSkipped {
					t.Fatalf("phase %s, want Skipped", p)
				}
				if nodes.HasWaitingTaint(h.node()) {
					t.Fatal("the taint stayed after the NodeCycle ended")
				}
				return
			}
			if tc.adminCordon {
				h.editNode(func(n *corev1.Node) { n.Spec.Unschedulable = true })
			}
			h.editNode2("worker-2", func(n *corev1.Node) {
				n.Spec.Unschedulable = false
				delete(n.Annotations, v1alpha1.AnnotationCordonedBy)
			})
			h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
			if n := h.node(); !n.Spec.Unschedulable || nodes.HasWaitingTaint(n) {
				t.Fatalf("cordoned %v, tainted %v; want cordoned, not tainted", n.Spec.Unschedulable, nodes.HasWaitingTaint(n))
			}
		})
	}
}
