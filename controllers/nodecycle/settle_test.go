package nodecycle

import (
	"fmt"
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

// --max-concurrent as a percentage: of the cluster's Nodes nodecycle may
// handle, rounded up; an excluded node does not count.
func TestMaxConcurrentPercentage(t *testing.T) {
	for _, tc := range []struct {
		pct      int
		admitted bool
	}{{25, false}, {50, true}} {
		t.Run(fmt.Sprintf("%d%%", tc.pct), func(t *testing.T) {
			h := newHarness(t)
			h.cfg.MaxConcurrentPercent = tc.pct
			h.restart()
			for _, n := range []string{"worker-2", "worker-3", "worker-4"} {
				h.create(testNodeObject(n, "boot-1"))
			}
			excluded := testNodeObject("excluded", "boot-1")
			excluded.Labels = map[string]string{v1alpha1.LabelExclude: "true"}
			h.create(excluded)
			// worker-2 is in maintenance: 1 of 1 slot at 25 % of 4, 1 of 2 at 50 %.
			started := metav1.NewMicroTime(h.clock.Now())
			h.create(&v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "worker-2-b-1"},
				Spec:   v1alpha1.NodeCycleSpec{NodeName: "worker-2", Strategies: []v1alpha1.Strategy{v1alpha1.StrategyReboot}, Attempt: 1},
				Status: v1alpha1.NodeCycleStatus{Phase: v1alpha1.PhaseWaitingForNodeReady, StartTime: &started}})
			h.open()
			h.settle()
			nc := h.cycle()
			if admitted := nc.Status.Phase != v1alpha1.PhasePending; admitted != tc.admitted {
				t.Fatalf("%d%%: phase %s (%s)", tc.pct, nc.Status.Phase, nc.Status.Message)
			}
			if !tc.admitted && nc.Status.Message != "Waiting for a maintenance slot (1 of 1 taken; kubectl get nodecycles shows which)" {
				t.Fatalf("message %q", nc.Status.Message)
			}
		})
	}
}
