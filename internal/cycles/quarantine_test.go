package cycles

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// needsReboot is a Ready node on boot whose agent says RebootRequired=True,
// checked on the boot checked (the heartbeat on the node's clock, an hour
// behind the manager's).
func needsReboot(boot, checked string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: map[string]string{v1alpha1.AnnotationCheckedBoot: checked}},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: boot}, Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
			{Type: v1alpha1.ConditionRebootRequired, Status: corev1.ConditionTrue, Reason: string(v1alpha1.ReasonSentinelFilePresent),
				LastHeartbeatTime: metav1.NewTime(t0.Add(-time.Hour))},
		}},
	}
}

// finished is a NodeCycle of n1 for boot that ended in phase at done,
// having produced the boot after.
func finished(name, boot, after string, phase v1alpha1.Phase, created, done time.Time) *v1alpha1.NodeCycle {
	return &v1alpha1.NodeCycle{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec:       v1alpha1.NodeCycleSpec{NodeName: "n1", BootID: boot, Attempt: 1},
		Status: v1alpha1.NodeCycleStatus{Phase: phase, BootIDBefore: boot, BootIDAfter: after,
			RebootRequestTime: ptrTime(created.Add(time.Minute)), CompletionTime: ptrTime(done)},
	}
}

func ptrTime(t time.Time) *metav1.MicroTime { m := metav1.NewMicroTime(t); return &m }

// reconcileNode runs what the Node and Machine reconcilers run: Settle,
// then OpenCycle when wanted. It returns the node's NodeCycles, newest first.
func reconcileNode(t *testing.T, o *Opener, sc Scope, c client.Client) []v1alpha1.NodeCycle {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: "n1"}, n); err != nil {
		t.Fatal(err)
	}
	history, wanted, err := o.Settle(ctx, sc, n)
	if err != nil {
		t.Fatal(err)
	}
	if wanted {
		if _, err = o.OpenCycle(ctx, sc, n, history, o.Config.CycleSpec("n1", nil)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := OfNode(ctx, c, testNamespace, "", "n1")
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// H7: RebootRequired left from before a reboot opens nothing, after a
// Succeeded and after a Failed NodeCycle; the agent's check on the new boot
// opens one at once, whatever the node's clock says.
func TestANeedIsTakenOnlyFromTheCurrentBoot(t *testing.T) {
	for _, phase := range []v1alpha1.Phase{v1alpha1.PhaseSucceeded, v1alpha1.PhaseFailed} {
		t.Run(string(phase), func(t *testing.T) {
			last := finished("n1-a-1", "boot-1", "boot-2", phase, t0, t0.Add(5*time.Minute))
			o, sc, c := newTestOpener(t0.Add(6*time.Minute), needsReboot("boot-2", "boot-1"), last)
			if got := reconcileNode(t, o, sc, c); len(got) != 1 {
				t.Fatalf("a condition checked on the old boot opened a NodeCycle: %d NodeCycles", len(got))
			}
			setCheckedBoot(t, c, "boot-2")
			got := reconcileNode(t, o, sc, c)
			if len(got) != 2 || !hasCycleFor(got, "boot-2") {
				t.Fatalf("the agent's check on the new boot opened no NodeCycle for it: %+v", specs(got))
			}
		})
	}
}

// H7: a node that needs a reboot again right after each of its last
// --quarantine-after verified reboots is quarantined (condition, Warning
// Event), not rebooted again; deleting the newest NodeCycle of the loop
// allows one more attempt. Reboots needed a week apart are no loop.
func TestARebootLoopIsQuarantined(t *testing.T) {
	first := finished("n1-a-1", "boot-1", "boot-2", v1alpha1.PhaseSucceeded, t0, t0.Add(5*time.Minute))
	second := finished("n1-b-1", "boot-2", "boot-3", v1alpha1.PhaseSucceeded, t0.Add(6*time.Minute), t0.Add(11*time.Minute))
	o, sc, c := newTestOpener(t0.Add(12*time.Minute), needsReboot("boot-3", "boot-3"), first, second)
	if got := reconcileNode(t, o, sc, c); len(got) != 2 {
		t.Fatalf("a node in a reboot loop got another NodeCycle: %+v", specs(got))
	}
	n := getNode(t, c)
	cond := nodes.Condition(n, v1alpha1.ConditionMaintenanceInProgress)
	if cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != string(v1alpha1.ReasonQuarantined) ||
		!strings.Contains(cond.Message, "n1-b-1, n1-a-1") || !strings.Contains(cond.Message, "deleting NodeCycle nodecycle-system/n1-b-1") {
		t.Fatalf("MaintenanceInProgress = %+v, want False/Quarantined naming the loop and the way out", cond)
	}
	if ev := drain(o.Recorder); !strings.Contains(ev, "Warning Quarantined") {
		t.Fatalf("no Warning Quarantined Event: %q", ev)
	}

	By := func(s string) { t.Log(s) }
	By("hours later the node is still quarantined, with no new Event")
	o.Clock.(interface{ SetTime(time.Time) }).SetTime(t0.Add(5 * time.Hour))
	if got := reconcileNode(t, o, sc, c); len(got) != 2 {
		t.Fatalf("the quarantine ended by itself: %+v", specs(got))
	}
	if ev := drain(o.Recorder); ev != "" {
		t.Fatalf("Events repeated: %q", ev)
	}

	By("deleting the newest NodeCycle of the loop lifts the quarantine")
	if err := c.Delete(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	got := reconcileNode(t, o, sc, c)
	if len(got) != 2 || !hasCycleFor(got, "boot-3") {
		t.Fatalf("no new NodeCycle after the loop's NodeCycle was deleted: %+v", specs(got))
	}
	if cond := nodes.Condition(getNode(t, c), v1alpha1.ConditionMaintenanceInProgress); cond.Reason != string(v1alpha1.ReasonQuarantineLifted) {
		t.Fatalf("MaintenanceInProgress = %+v, want QuarantineLifted", cond)
	}

	t.Run("a reboot the node did not ask for is no loop", func(t *testing.T) {
		// A reboot, then Cluster API's in-place update at once, then the
		// sentinel again: the update's reboot was not the node's ask.
		update := finished("n1-b-1", "boot-2", "boot-3", v1alpha1.PhaseSucceeded, t0.Add(6*time.Minute), t0.Add(11*time.Minute))
		update.Spec.Request = &v1alpha1.RequestSpec{}
		update.Spec.Update = &v1alpha1.UpdateSpec{ID: "u1"}
		o, sc, c := newTestOpener(t0.Add(12*time.Minute), needsReboot("boot-3", "boot-3"), first, update)
		if got := reconcileNode(t, o, sc, c); len(got) != 3 {
			t.Fatalf("an update's reboot was taken for a loop: %+v", specs(got))
		}
		if Quarantined(getNode(t, c)) {
			t.Fatal("quarantined")
		}
	})

	t.Run("needs a week apart", func(t *testing.T) {
		weekly := finished("n1-b-1", "boot-2", "boot-3", v1alpha1.PhaseSucceeded, t0.Add(7*24*time.Hour), t0.Add(7*24*time.Hour+5*time.Minute))
		o, sc, c := newTestOpener(t0.Add(14*24*time.Hour), needsReboot("boot-3", "boot-3"), first, weekly)
		if got := reconcileNode(t, o, sc, c); len(got) != 3 {
			t.Fatalf("weekly updates were taken for a loop: %+v", specs(got))
		}
	})
}

func setCheckedBoot(t *testing.T, c client.Client, boot string) {
	t.Helper()
	if err := nodes.SetAnnotations(context.Background(), c, getNode(t, c), map[string]*string{v1alpha1.AnnotationCheckedBoot: &boot}); err != nil {
		t.Fatal(err)
	}
}

func getNode(t *testing.T, c client.Client) *corev1.Node {
	t.Helper()
	n := &corev1.Node{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "n1"}, n); err != nil {
		t.Fatal(err)
	}
	return n
}

// hasCycleFor reports whether list holds a first attempt for boot (the
// fake client sets no creation time, so the order says nothing).
func hasCycleFor(list []v1alpha1.NodeCycle, boot string) bool {
	for _, nc := range list {
		if nc.Spec.BootID == boot && nc.Spec.Attempt == 1 {
			return true
		}
	}
	return false
}

func specs(list []v1alpha1.NodeCycle) []v1alpha1.NodeCycleSpec {
	var out []v1alpha1.NodeCycleSpec
	for _, nc := range list {
		out = append(out, nc.Spec)
	}
	return out
}

// drain returns the Events recorded so far, one per line.
func drain(r events.EventRecorder) string {
	var out []string
	for {
		select {
		case e := <-r.(*events.FakeRecorder).Events:
			out = append(out, e)
		default:
			return strings.Join(out, "\n")
		}
	}
}
