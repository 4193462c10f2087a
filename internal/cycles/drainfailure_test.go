package cycles

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// drainFailed is n1's NodeCycle for boot-1 whose drain could not finish,
// with the drain.failure action.
func drainFailed(action v1alpha1.DrainFailureAction) *v1alpha1.NodeCycle {
	nc := finished("n1-a-1", "boot-1", "", v1alpha1.PhaseFailed, t0, t0.Add(10*time.Minute))
	nc.Status.Reason = v1alpha1.ReasonDrainTimeout
	nc.Spec.Drain.Failure = action
	return nc
}

// cordonedBy puts the node under the cordon of NodeCycle name.
func cordonedBy(n *corev1.Node, name string) *corev1.Node {
	n.Spec.Unschedulable = true
	n.Annotations[v1alpha1.AnnotationCordonedBy] = testNamespace + "/" + name
	return n
}

// drainFailure SkipNode: a node whose drain could not finish is not tried
// again on the same boot, however long after (MaintenanceInProgress says
// NodeSkipped, one Warning Event); a new boot, or deleting the failed
// NodeCycle, lifts the skip. Uncordon and LeaveCordoned retry after the
// backoff.
func TestASkippedNodeIsNotTriedAgainOnItsBoot(t *testing.T) {
	failed := drainFailed(v1alpha1.DrainFailureSkipNode)
	o, sc, c := newTestOpener(t0.Add(48*time.Hour), needsReboot("boot-1", "boot-1"), failed)
	for range 2 {
		if got := reconcileNode(t, o, sc, c); len(got) != 1 {
			t.Fatalf("a skipped node got another NodeCycle: %+v", specs(got))
		}
	}
	cond := nodes.Condition(getNode(t, c), v1alpha1.ConditionMaintenanceInProgress)
	if cond == nil || cond.Reason != string(v1alpha1.ReasonNodeSkipped) || !strings.Contains(cond.Message, "NodeCycle nodecycle-system/n1-a-1: DrainTimeout") {
		t.Fatalf("MaintenanceInProgress = %+v, want NodeSkipped naming the NodeCycle", cond)
	}
	if ev := drain(o.Recorder); strings.Count(ev, "Warning NodeSkipped") != 1 {
		t.Fatalf("Events %q: want one Warning NodeSkipped", ev)
	}
	if !Skipped(getNode(t, c)) || Quarantined(getNode(t, c)) {
		t.Fatal("Skipped/Quarantined disagree with the condition")
	}

	t.Run("deleting the failed NodeCycle lifts the skip", func(t *testing.T) {
		o, sc, c := newTestOpener(t0.Add(48*time.Hour), needsReboot("boot-1", "boot-1"), drainFailed(v1alpha1.DrainFailureSkipNode))
		reconcileNode(t, o, sc, c)
		if err := c.Delete(context.Background(), failed); err != nil {
			t.Fatal(err)
		}
		if got := reconcileNode(t, o, sc, c); len(got) != 1 || got[0].Name == failed.Name {
			t.Fatalf("no new NodeCycle once the failed one was deleted: %+v", specs(got))
		}
		if cond := nodes.Condition(getNode(t, c), v1alpha1.ConditionMaintenanceInProgress); cond.Reason != string(v1alpha1.ReasonNodeSkipLifted) {
			t.Fatalf("MaintenanceInProgress = %+v, want NodeSkipLifted", cond)
		}
	})

	t.Run("a new boot is tried", func(t *testing.T) {
		o, sc, c := newTestOpener(t0.Add(48*time.Hour), needsReboot("boot-2", "boot-2"), drainFailed(v1alpha1.DrainFailureSkipNode))
		if got := reconcileNode(t, o, sc, c); len(got) != 2 || !hasCycleFor(got, "boot-2") {
			t.Fatalf("the new boot got no NodeCycle: %+v", specs(got))
		}
	})

	for _, action := range []v1alpha1.DrainFailureAction{"", v1alpha1.DrainFailureUncordon, v1alpha1.DrainFailureLeaveCordoned} {
		o, sc, c := newTestOpener(t0.Add(48*time.Hour), needsReboot("boot-1", "boot-1"), drainFailed(action))
		if got := reconcileNode(t, o, sc, c); len(got) != 2 {
			t.Fatalf("%q: the node was not tried again after the backoff: %+v", action, specs(got))
		}
	}
}

// drainFailure LeaveCordoned: the cordon left by the failed NodeCycle
// stays while the node runs that boot and asks for a reboot; once it no
// longer asks (or runs a new boot) the cordon is lifted. Another failed
// NodeCycle's cordon is lifted as before.
func TestACordonLeftOnPurposeStays(t *testing.T) {
	for _, tc := range []struct {
		name  string
		node  *corev1.Node
		nc    *v1alpha1.NodeCycle
		stays bool
	}{
		{"left cordoned", cordonedBy(needsReboot("boot-1", "boot-1"), "n1-a-1"), drainFailed(v1alpha1.DrainFailureLeaveCordoned), true},
		{"uncordon", cordonedBy(needsReboot("boot-1", "boot-1"), "n1-a-1"), drainFailed(v1alpha1.DrainFailureUncordon), false},
		{"new boot", cordonedBy(needsReboot("boot-2", "boot-1"), "n1-a-1"), drainFailed(v1alpha1.DrainFailureLeaveCordoned), false},
		{"no longer asks", cordonedBy(needsReboot("boot-1", ""), "n1-a-1"), drainFailed(v1alpha1.DrainFailureLeaveCordoned), false},
		{"another's cordon", cordonedBy(needsReboot("boot-1", "boot-1"), "n1-z-9"), drainFailed(v1alpha1.DrainFailureLeaveCordoned), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, sc, c := newTestOpener(t0.Add(11*time.Minute), tc.node, tc.nc)
			if n := settleNode(t, o, sc, c, "n1"); n.Spec.Unschedulable != tc.stays {
				t.Fatalf("unschedulable %t, want %t", n.Spec.Unschedulable, tc.stays)
			}
		})
	}
}
