package nodecycle

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

func TestBadInputEndsTheNodeCycleAndLeavesTheNodeAlone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(h *harness, nc *v1alpha1.NodeCycle)
		reason v1alpha1.Reason
	}{
		{"unknown strategy", func(_ *harness, nc *v1alpha1.NodeCycle) { nc.Spec.Strategies = []v1alpha1.Strategy{"rebuild"} }, v1alpha1.ReasonInvalidStrategy},
		{"replace without a Machine", func(_ *harness, nc *v1alpha1.NodeCycle) {
			nc.Spec.Strategies = []v1alpha1.Strategy{v1alpha1.StrategyReplace}
		}, v1alpha1.ReasonNotAClusterAPINode},
		{"power-cycle without settings", func(_ *harness, nc *v1alpha1.NodeCycle) {
			nc.Spec.Strategies, nc.Spec.PowerCycle = []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle}, nil
		}, v1alpha1.ReasonProviderError},
		{"unreachable BMC", func(h *harness, nc *v1alpha1.NodeCycle) {
			nc.Spec.Strategies = []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle}
			h.power.fail = errors.New("connection refused")
		}, v1alpha1.ReasonProviderError},
		{"bad maintenance window", func(_ *harness, nc *v1alpha1.NodeCycle) {
			nc.Spec.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Start: "25:00", End: "04:00"}}
		}, v1alpha1.ReasonInvalidMaintenanceWindow},
		// H1: stored before the CRD bounded durations.
		{"a stored duration that is not one", func(h *harness, nc *v1alpha1.NodeCycle) {
			if err := json.Unmarshal([]byte(`"9999999999h"`), &nc.Spec.Drain.Timeout); err != nil {
				h.t.Fatal(err)
			}
		}, v1alpha1.ReasonInvalidSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			nc := h.open()
			tc.edit(h, nc)
			if err := h.c.Update(h.ctx, nc); err != nil {
				t.Fatal(err)
			}
			h.runUntil(v1alpha1.PhaseFailed)
			got := h.cycle()
			if got.Status.Reason != tc.reason || got.Status.StartTime != nil {
				t.Errorf("reason %s (%s), slot taken %t; want %s and no slot", got.Status.Reason, got.Status.Message, got.Status.StartTime != nil, tc.reason)
			}
			if n := h.node(); n.Spec.Unschedulable || h.power.calledWith("off-Soft")+h.power.calledWith("off-Hard") > 0 {
				t.Error("the node was touched")
			}
		})
	}
}

func TestSlots(t *testing.T) {
	t.Run("a node cordoned by another NodeCycle holds the slot", func(t *testing.T) {
		h := newHarness(t)
		other := testNodeObject("worker-2", "boot-1")
		other.Spec.Unschedulable = true
		other.Annotations[v1alpha1.AnnotationCordonedBy] = testNamespace + "/worker-2-old"
		h.create(other)
		h.open()
		h.settle()
		nc := h.cycle()
		if nc.Status.Phase != v1alpha1.PhasePending || !strings.Contains(nc.Status.Message, "1 of 1 taken") {
			t.Fatalf("phase %s (%s), want Pending for a slot", nc.Status.Phase, nc.Status.Message)
		}
	})
	// Lower: an admin-cordoned node whose maintenance failed and that is
	// still down holds its slot, though nodecycle keeps no cordon on it.
	t.Run("a node down after a failure holds the slot whoever cordoned it", func(t *testing.T) {
		h := newHarness(t)
		other := testNodeObject("worker-2", "boot-1")
		other.Spec.Unschedulable = true // the admin's
		setCondition(other, corev1.NodeReady, corev1.ConditionFalse)
		h.create(other)
		started := metav1.NewMicroTime(h.clock.Now().Add(-time.Hour))
		h.create(&v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "worker-2-old"},
			Spec: v1alpha1.NodeCycleSpec{NodeName: "worker-2", BootID: "boot-1", Strategies: []v1alpha1.Strategy{v1alpha1.StrategyReboot}}})
		failed := &v1alpha1.NodeCycle{}
		_ = h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: "worker-2-old"}, failed)
		failed.Status = v1alpha1.NodeCycleStatus{Phase: v1alpha1.PhaseFailed, StartTime: &started, CompletionTime: &started, BootIDBefore: "boot-1"}
		if err := h.c.Status().Update(h.ctx, failed); err != nil {
			t.Fatal(err)
		}
		h.open()
		h.settle()
		if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhasePending || !strings.Contains(nc.Status.Message, "1 of 1 taken") {
			t.Fatalf("phase %s (%s), want Pending while worker-2 is down", nc.Status.Phase, nc.Status.Message)
		}
		h.editNode2("worker-2", func(n *corev1.Node) { setCondition(n, corev1.NodeReady, corev1.ConditionTrue) })
		h.clock.Step(time.Minute)
		h.settle()
		if p := h.cycle().Status.Phase; !p.Active() && p != v1alpha1.PhaseSucceeded {
			t.Fatalf("phase %s once worker-2 is Ready again", p)
		}
	})
	t.Run("a control-plane node waits for every other", func(t *testing.T) {
		h := newHarness(t)
		h.cfg.MaxConcurrent = 3
		h.cfg.ControlPlanesLast = false // the slot rule alone, whatever the order
		h.restart()
		h.create(&v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "other"},
			Spec: v1alpha1.NodeCycleSpec{NodeName: "worker-2", Strategies: []v1alpha1.Strategy{v1alpha1.StrategyReboot}}})
		other := &v1alpha1.NodeCycle{}
		_ = h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: "other"}, other)
		other.Status.Phase = v1alpha1.PhaseDraining
		if err := h.c.Status().Update(h.ctx, other); err != nil {
			t.Fatal(err)
		}
		nc := h.open()
		nc.Spec.ControlPlane = true
		if err := h.c.Update(h.ctx, nc); err != nil {
			t.Fatal(err)
		}
		h.settle()
		if nc := h.cycle(); nc.Status.Phase != v1alpha1.PhasePending || !strings.Contains(nc.Status.Message, "3 of 3 taken") {
			t.Fatalf("control-plane node in %s (%s) while another node holds a slot", nc.Status.Phase, nc.Status.Message)
		}
	})
}
