package nodecycle

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// The NodeCycles that wait for a slot form a queue: a free slot goes to the
// highest nodecycle.io/priority, then to the oldest; one that waits for
// something else (a blocking pod, a window) holds no place in it.
func TestQueue(t *testing.T) {
	for _, tc := range []struct {
		name string
		// other is worker-2's NodeCycle: created this long before ours,
		// with this priority and message.
		otherAge                time.Duration
		otherPriority, priority string
		otherMessage            string
		wantWait                bool
	}{
		{name: "an older one waiting for a slot goes first", otherAge: time.Hour, otherMessage: waitingForSlot + "1 of 1 taken)", wantWait: true},
		{name: "a younger one goes after", otherAge: -time.Hour, otherMessage: waitingForSlot + "1 of 1 taken)"},
		{name: "a higher priority goes first", otherAge: time.Hour, otherMessage: waitingForSlot + "1 of 1 taken)", priority: "10"},
		{name: "a younger one with a higher priority goes first", otherAge: -time.Hour, otherPriority: "5", otherMessage: waitingForSlot + "1 of 1 taken)", wantWait: true},
		{name: "an older one held by a gate holds no place", otherAge: time.Hour, otherMessage: "Waiting: pod demo/db runs on the node (nodecycle.io/do-not-disrupt=true)"},
		{name: "an older one waiting for its zone holds no place", otherAge: time.Hour, otherMessage: "Waiting for a maintenance slot: another node of zone=\"a\" is in maintenance (at most one per zone)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(testNodeObject("worker-2", "boot-1"))
			now := metav1.NewTime(epoch)
			other := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "worker-2-cycle",
				CreationTimestamp: metav1.NewTime(epoch.Add(-tc.otherAge)), Annotations: map[string]string{v1alpha1.AnnotationPriority: tc.otherPriority}},
				Spec: v1alpha1.NodeCycleSpec{NodeName: "worker-2", Strategies: []v1alpha1.Strategy{v1alpha1.StrategyReboot}, Attempt: 1}}
			h.create(other)
			other.Status = v1alpha1.NodeCycleStatus{Phase: v1alpha1.PhasePending, Message: tc.otherMessage}
			if err := h.c.Status().Update(h.ctx, other); err != nil {
				t.Fatal(err)
			}
			nc := h.open()
			nc.CreationTimestamp = now
			nc.Annotations = map[string]string{v1alpha1.AnnotationPriority: tc.priority}
			if err := h.c.Update(h.ctx, nc); err != nil {
				t.Fatal(err)
			}
			h.settle()
			got := h.cycle()
			if waits := got.Status.Phase == v1alpha1.PhasePending; waits != tc.wantWait {
				t.Fatalf("phase %s (%s); want waiting %v", got.Status.Phase, got.Status.Message, tc.wantWait)
			}
			if tc.wantWait && !strings.HasPrefix(got.Status.Message, waitingForSlot+"1 of 1 taken") {
				t.Fatalf("message %q", got.Status.Message)
			}
			// The one ahead takes the slot; ours goes once it is free again.
			if tc.wantWait {
				_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(other), other)
				other.Status.Phase = v1alpha1.PhaseSkipped
				if err := h.c.Status().Update(h.ctx, other); err != nil {
					t.Fatal(err)
				}
				h.settle()
				if p := h.cycle().Status.Phase; p == v1alpha1.PhasePending {
					t.Fatalf("still waiting once the queue is empty: %s", h.cycle().Status.Message)
				}
			}
		})
	}
}
