package nodecycle

import (
	"strings"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// The next node waits for the settle time after the last maintenance of
// its cluster ended.
func TestSettleTimeAfterTheLastMaintenance(t *testing.T) {
	h := newHarness(t)
	h.cfg.SettleTime = 5 * time.Minute
	started, ended := metav1.NewMicroTime(h.clock.Now().Add(-10*time.Minute)), metav1.NewMicroTime(h.clock.Now().Add(-time.Minute))
	h.create(&v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "worker-2-b-1"},
		Spec:   v1alpha1.NodeCycleSpec{NodeName: "worker-2", Strategies: []v1alpha1.Strategy{v1alpha1.StrategyReboot}, Attempt: 1},
		Status: v1alpha1.NodeCycleStatus{Phase: v1alpha1.PhaseSucceeded, StartTime: &started, CompletionTime: &ended}})
	h.open()
	res := h.settle()
	nc := h.cycle()
	if nc.Status.Phase != v1alpha1.PhasePending || !strings.Contains(nc.Status.Message, "settling for 5m0s after the maintenance of node worker-2") {
		t.Fatalf("phase %s: %q", nc.Status.Phase, nc.Status.Message)
	}
	if res.RequeueAfter != 4*time.Minute {
		t.Fatalf("requeue after %s, want the 4m left", res.RequeueAfter)
	}
	h.clock.Step(4 * time.Minute)
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
}

// With waitForHealthyPodDisruptionBudgets the next node waits until every
// budget is healthy again.
func TestWaitForHealthyPodDisruptionBudgets(t *testing.T) {
	h := newHarness(t)
	h.cfg.WaitForHealthyPDBs = true
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "web"},
		Status: policyv1.PodDisruptionBudgetStatus{CurrentHealthy: 2, DesiredHealthy: 3}}
	h.create(pdb)
	h.open()
	h.settle()
	if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhasePending ||
		nc.Status.Message != "Waiting: PodDisruptionBudgets not healthy yet: demo/web (2 of 3 healthy)" {
		t.Fatalf("phase %s: %q", nc.Status.Phase, nc.Status.Message)
	}
	pdb.Status.CurrentHealthy = 3
	if err := h.c.Status().Update(h.ctx, pdb); err != nil {
		t.Fatal(err)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
}
