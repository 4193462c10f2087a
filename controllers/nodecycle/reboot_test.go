package nodecycle

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// rebootingKubelet reboots the node once the agent was asked to: a new
// boot ID and Ready, as the agent and kubelet do after a reboot.
func (h *harness) rebootWhenRequested() bool {
	if _, asked := h.node().Annotations[v1alpha1.AnnotationRebootRequest]; asked && nodesBoot(h) == "boot-1" {
		h.boot("boot-2")
		return true
	}
	return false
}

func nodesBoot(h *harness) string { return h.node().Status.NodeInfo.BootID }

func TestRebootWalksEveryPhaseAndProvesTheReboot(t *testing.T) {
	h := newHarness(t)
	h.create(workloadPod("web-1", testNode))
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	if !h.node().Spec.Unschedulable || h.node().Annotations[v1alpha1.AnnotationCordonedBy] != testNamespace+"/"+testCycle {
		t.Fatalf("node not cordoned by nodecycle while waiting for the reboot: %+v", h.node().Annotations)
	}
	if c := nodeCondition(h.node(), v1alpha1.ConditionMaintenanceInProgress); c == nil || c.Status != corev1.ConditionTrue || c.Reason != string(v1alpha1.ReasonWaitingForNodeReady) {
		t.Fatalf("MaintenanceInProgress = %+v, want True/WaitingForNodeReady", c)
	}
	// The same boot ID, even Ready, is no proof.
	h.clock.Step(time.Minute)
	h.settle()
	if p := h.cycle().Status.Phase; p != v1alpha1.PhaseWaitingForNodeReady {
		t.Fatalf("phase %s before the node rebooted", p)
	}
	// A new boot that is not Ready yet is no proof either.
	h.editNode(func(n *corev1.Node) {
		n.Status.NodeInfo.BootID = "boot-2"
		setCondition(n, corev1.NodeReady, corev1.ConditionFalse)
	})
	h.settle()
	if p := h.cycle().Status.Phase; p != v1alpha1.PhaseWaitingForNodeReady {
		t.Fatalf("phase %s with a new boot that is not Ready", p)
	}
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)

	nc := h.cycle()
	want := []v1alpha1.Phase{v1alpha1.PhaseCordoning, v1alpha1.PhaseDraining, v1alpha1.PhaseRebooting,
		v1alpha1.PhaseWaitingForNodeReady, v1alpha1.PhaseUncordoning, v1alpha1.PhaseSucceeded}
	if got := phasesVisited(nc); !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	if nc.Status.BootIDBefore != "boot-1" || nc.Status.BootIDAfter != "boot-2" {
		t.Errorf("boot IDs %q -> %q", nc.Status.BootIDBefore, nc.Status.BootIDAfter)
	}
	n := h.node()
	if n.Spec.Unschedulable || n.Annotations[v1alpha1.AnnotationCordonedBy] != "" || n.Annotations[v1alpha1.AnnotationRebootRequest] != "" {
		t.Errorf("node left cordoned or with a reboot request: %v %v", n.Spec.Unschedulable, n.Annotations)
	}
	if c := nodeCondition(n, v1alpha1.ConditionMaintenanceInProgress); c == nil || c.Status != corev1.ConditionFalse || c.Reason != string(v1alpha1.ReasonMaintenanceCompleted) {
		t.Errorf("MaintenanceInProgress = %+v, want False/MaintenanceCompleted", c)
	}
	wantEvents := []string{"MaintenanceStarted", "Cordoned", "Evicted", "Drained", "RebootRequested", "RebootVerified", "Uncordoned", "MaintenanceCompleted"}
	if got := h.reasons(); !slices.Equal(got, wantEvents) {
		t.Errorf("events %v, want %v", got, wantEvents)
	}
}

// H6: at the reboot timeout, a node whose agent acknowledged the request
// and that still runs its old boot may yet go down: it stays cordoned
// (which holds its cluster's slot) and keeps the request.
func TestAnAcknowledgedRebootKeepsTheNodeCordoned(t *testing.T) {
	h := newHarness(t)
	h.open()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	id := h.cycle().Status.RebootRequestID
	h.editNode(func(n *corev1.Node) { n.Annotations[v1alpha1.AnnotationRebootAck] = id })
	h.runUntil(v1alpha1.PhaseFailed)
	nc, n := h.cycle(), h.node()
	if nc.Status.Reason != v1alpha1.ReasonRebootTimeout || !strings.Contains(nc.Status.Message, "until it runs a new boot") {
		t.Fatalf("reason %s message %q", nc.Status.Reason, nc.Status.Message)
	}
	if !n.Spec.Unschedulable || n.Annotations[v1alpha1.AnnotationCordonedBy] == "" || n.Annotations[v1alpha1.AnnotationRebootRequest] != id {
		t.Fatalf("the node was given back while its reboot may still come: unschedulable %t, annotations %v", n.Spec.Unschedulable, n.Annotations)
	}
}
