package nodecycle

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// A freeze of the NodeCycle's policy holds it with "frozen until" and one
// Event, read from the policy as it is now: lifting the freeze lets the
// maintenance start at once.
func TestPolicyFreeze(t *testing.T) {
	h := newHarness(t)
	start, end := epoch.Add(-time.Hour), epoch.Add(48*time.Hour)
	policy := &v1alpha1.NodeCyclePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "workers"}}
	policy.Spec.Freezes = []v1alpha1.Freeze{{Start: start.Format(time.RFC3339), End: end.Format(time.RFC3339), Reason: "holiday change freeze"}}
	h.create(policy)
	h.open()
	nc := h.cycle()
	nc.Spec.Policy = "workers" // created before the freeze: its own copy has none
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	var res = h.settle()
	for range 3 {
		h.clock.Step(time.Minute)
		res = h.settle()
	}
	want := "Waiting: frozen until " + end.UTC().Format(time.RFC3339) + ": holiday change freeze"
	if got := h.cycle(); got.Status.Phase != v1alpha1.PhasePending || got.Status.Message != want {
		t.Fatalf("phase %s: %q, want Pending: %q", got.Status.Phase, got.Status.Message, want)
	}
	if got := end.Sub(h.clock.Now()); res.RequeueAfter != got {
		t.Errorf("requeue after %s, want %s (the end of the freeze)", res.RequeueAfter, got)
	}
	if n := countOf(h.reasons(), string(v1alpha1.ReasonFrozen)); n != 1 {
		t.Errorf("%d Frozen Events, want 1", n)
	}
	if h.node().Spec.Unschedulable {
		t.Fatal("cordoned in a freeze")
	}
	policy.Spec.Freezes = nil
	if err := h.c.Update(h.ctx, policy); err != nil {
		t.Fatal(err)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
}

// The manager's --freeze holds every NodeCycle until its end.
func TestManagerFreeze(t *testing.T) {
	h := newHarness(t)
	end := epoch.Add(2 * time.Hour)
	h.cfg.Freezes = []v1alpha1.Freeze{{Start: epoch.Add(-time.Minute).Format(time.RFC3339), End: end.Format(time.RFC3339), Reason: "datacenter move"}}
	h.restart()
	h.open()
	res := h.settle()
	if got := h.cycle(); got.Status.Phase != v1alpha1.PhasePending || !strings.Contains(got.Status.Message, "frozen until") ||
		!strings.HasSuffix(got.Status.Message, ": datacenter move") {
		t.Fatalf("phase %s: %q", got.Status.Phase, got.Status.Message)
	}
	h.clock.Step(res.RequeueAfter)
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)

	reg := prometheus.NewPedanticRegistry()
	RegisterGateMetrics(reg, h.c, h.cfg.Freezes, h.clock)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP nodecycle_gate_closed 1 while a time gate holds new maintenance, else 0: gate freeze (policy "": the manager's --freeze, for every cluster) or window (the policy's maintenance windows are closed).
# TYPE nodecycle_gate_closed gauge
nodecycle_gate_closed{gate="freeze",policy=""} 0
`), "nodecycle_gate_closed"); err != nil {
		t.Error(err)
	}
}

// The gauges of the time gates: a policy's freeze and its windows.
func TestGateMetrics(t *testing.T) {
	h := newHarness(t)
	policy := &v1alpha1.NodeCyclePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "workers"}}
	policy.Spec.Freezes = []v1alpha1.Freeze{{Start: epoch.Format(time.RFC3339), End: epoch.Add(time.Hour).Format(time.RFC3339), Reason: "x"}}
	policy.Spec.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Start: "22:00", End: "04:00"}}
	h.create(policy)
	reg := prometheus.NewPedanticRegistry()
	RegisterGateMetrics(reg, h.c, nil, h.clock)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP nodecycle_seconds_until_next_opening Seconds until a time gate opens again (the end of the freeze, the next maintenance window); 0 while it is open.
# TYPE nodecycle_seconds_until_next_opening gauge
nodecycle_seconds_until_next_opening{gate="freeze",policy="nodecycle-system/workers"} 3600
nodecycle_seconds_until_next_opening{gate="window",policy="nodecycle-system/workers"} 36000
`), "nodecycle_seconds_until_next_opening"); err != nil {
		t.Error(err)
	}
}

func countOf(xs []string, x string) int {
	n := 0
	for i := slices.Index(xs, x); i >= 0; i = slices.Index(xs, x) {
		n++
		xs = xs[i+1:]
	}
	return n
}
