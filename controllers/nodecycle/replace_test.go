package nodecycle

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

func TestReplaceDeletesTheMachineAndWaitsForItsReplacement(t *testing.T) {
	h := newHarness(t, withMachine())
	h.createMachine(testMachine, "ms-1", "")
	h.open(v1alpha1.StrategyReplace)
	h.runUntil(v1alpha1.PhaseWaitingForReplacement)
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: testMachine}, &clusterv1.Machine{}); err == nil {
		t.Fatal("the Machine was not deleted")
	}
	h.clock.Step(time.Second)
	h.createMachine("worker-2-machine", "ms-1", "worker-2")
	h.create(testNodeObject("worker-2", "boot-9"))
	h.runUntil(v1alpha1.PhaseSucceeded)
	nc := h.cycle()
	if nc.Status.ReplacementMachine != "worker-2-machine" || nc.Status.MachineSet != "ms-1" {
		t.Errorf("replacement %q of MachineSet %q", nc.Status.ReplacementMachine, nc.Status.MachineSet)
	}
	want := []v1alpha1.Phase{v1alpha1.PhaseCordoning, v1alpha1.PhaseDeletingMachine, v1alpha1.PhaseWaitingForReplacement, v1alpha1.PhaseSucceeded}
	if got := phasesVisited(nc); !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
}

func (h *harness) createMachine(name, machineSet, node string) {
	h.t.Helper()
	m := &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name,
		Labels:            map[string]string{clusterv1.ClusterNameLabel: ""},
		CreationTimestamp: metav1.NewTime(h.clock.Now()),
		OwnerReferences:   []metav1.OwnerReference{{APIVersion: clusterv1.GroupVersion.String(), Kind: "MachineSet", Name: machineSet, UID: "ms", Controller: ptrTo(true)}}},
	}
	h.create(m)
	if node != "" {
		m.Status.NodeRef = clusterv1.MachineNodeReference{Name: node}
		if err := h.c.Status().Update(h.ctx, m); err != nil {
			h.t.Fatalf("setting nodeRef: %v", err)
		}
	}
}

// H11: a replace deletes only the Machine whose node the NodeCycle is for.
func TestReplaceDeletesOnlyTheNodesMachine(t *testing.T) {
	h := newHarness(t, withMachine())
	h.createMachine(testMachine, "ms-1", "someone-elses-node")
	h.open(v1alpha1.StrategyReplace)
	h.runUntil(v1alpha1.PhaseFailed)
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: testMachine}, &clusterv1.Machine{}); err != nil {
		t.Fatalf("the Machine of another node was deleted: %v", err)
	}
	if msg := h.cycle().Status.Message; !strings.Contains(msg, "has node someone-elses-node, not worker-1") {
		t.Errorf("message %q", msg)
	}
}

func (h *harness) replacementArrives() bool {
	if h.machine == "" || h.cycle().Status.Phase != v1alpha1.PhaseWaitingForReplacement {
		return false
	}
	var list clusterv1.MachineList
	if err := h.c.List(h.ctx, &list); err != nil || len(list.Items) > 0 {
		return false
	}
	h.clock.Step(time.Second)
	h.createMachine("worker-2-machine", "ms-1", "worker-2")
	h.create(testNodeObject("worker-2", "boot-9"))
	return true
}
