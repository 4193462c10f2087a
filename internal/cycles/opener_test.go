package cycles

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/settings"
)

// H6: a node left cordoned by a NodeCycle whose acknowledged reboot has not
// happened yet keeps its cordon and request; once it runs a new boot (or
// the request is given up) both are lifted.
func TestLeftoversOfAPendingRebootStay(t *testing.T) {
	const ns = testNamespace
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: map[string]string{
			v1alpha1.AnnotationCordonedBy: ns + "/n1-a-1", v1alpha1.AnnotationRebootRequest: "req", v1alpha1.AnnotationRebootAck: "req"}},
		Spec: corev1.NodeSpec{Unschedulable: true},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: "boot-1"},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
	failed := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "n1-a-1"},
		Spec:   v1alpha1.NodeCycleSpec{NodeName: "n1", BootID: "boot-1", Attempt: 1},
		Status: v1alpha1.NodeCycleStatus{Phase: v1alpha1.PhaseFailed, RebootRequestID: "req", BootIDBefore: "boot-1"}}
	o, sc, c := newTestOpener(metav1.Now().Time, node, failed)
	settle := func() *corev1.Node { return settleNode(t, o, sc, c, "n1") }
	if n := settle(); !n.Spec.Unschedulable || n.Annotations[v1alpha1.AnnotationRebootRequest] != "req" {
		t.Fatalf("a pending reboot's cordon or request was lifted: %t %v", n.Spec.Unschedulable, n.Annotations)
	}
	n := settle()
	n.Status.NodeInfo.BootID = "boot-2" // it rebooted after all
	if err := c.Status().Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if n := settle(); n.Spec.Unschedulable || n.Annotations[v1alpha1.AnnotationRebootRequest] != "" {
		t.Fatalf("after the new boot the cordon and request stay: %t %v", n.Spec.Unschedulable, n.Annotations)
	}
}

const testNamespace = "nodecycle-system"

// settleNode has the Opener settle the node as read now and returns it as
// it is afterwards.
func settleNode(t *testing.T, o *Opener, sc Scope, c client.Client, name string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, n); err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.Settle(context.Background(), sc, n); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, n); err != nil {
		t.Fatal(err)
	}
	return n
}

// newTestOpener is an Opener on a fake client holding objs, at now on a
// fake clock, with its Events recorded in memory.
func newTestOpener(now time.Time, objs ...client.Object) (*Opener, Scope, client.Client) {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithStatusSubresource(&corev1.Node{}, &v1alpha1.NodeCycle{}).
		WithIndex(&v1alpha1.NodeCycle{}, IndexNodeName, func(o client.Object) []string { return []string{o.(*v1alpha1.NodeCycle).Spec.NodeName} }).
		Build()
	o := &Opener{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(100), Clock: clocktesting.NewFakeClock(now), Config: settings.DefaultConfig()}
	sc := Scope{Namespace: testNamespace, W: cluster.Workload{Client: c, Reader: c}, Events: cluster.NodeEvents{Recorder: o.Recorder}}
	return o, sc, c
}

// A node whose NodeCycle failed PostRebootHookTimeout keeps nodecycle's
// cordon while a post-reboot hook is held; released, the cordon (and the
// maintenance label) is lifted.
func TestACordonHeldByAPostRebootHookStays(t *testing.T) {
	const ns = testNamespace
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"maint": "true"}, Annotations: map[string]string{
			v1alpha1.AnnotationCordonedBy: ns + "/n1-a-1", v1alpha1.AnnotationMaintenanceLabels: "maint",
			v1alpha1.PrefixPostRebootHook + "ceph": ""}},
		Spec: corev1.NodeSpec{Unschedulable: true},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: "boot-2"},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
	failed := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "n1-a-1"},
		Spec:   v1alpha1.NodeCycleSpec{NodeName: "n1", BootID: "boot-1", Attempt: 1},
		Status: v1alpha1.NodeCycleStatus{Phase: v1alpha1.PhaseFailed, Reason: v1alpha1.ReasonPostRebootHookTimeout, BootIDBefore: "boot-1", BootIDAfter: "boot-2"}}
	o, sc, c := newTestOpener(metav1.Now().Time, node, failed)
	settle := func() *corev1.Node { return settleNode(t, o, sc, c, "n1") }
	n := settle()
	if !n.Spec.Unschedulable {
		t.Fatal("the cordon was lifted while a post-reboot hook is held")
	}
	delete(n.Annotations, v1alpha1.PrefixPostRebootHook+"ceph")
	if err := c.Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if n := settle(); n.Spec.Unschedulable || n.Labels["maint"] != "" || n.Annotations[v1alpha1.AnnotationMaintenanceLabels] != "" {
		t.Fatalf("released, the node stays cordoned (%t) or labelled (%v, %v)", n.Spec.Unschedulable, n.Labels, n.Annotations)
	}
}

// A node's nodecycle.io/priority is copied into its new NodeCycle: the
// NodeCycle's place in its cluster's queue.
func TestOpenCycleCopiesThePriority(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: map[string]string{v1alpha1.AnnotationPriority: "7"}},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: "boot-1"}}}
	o, sc, c := newTestOpener(metav1.Now().Time, node)
	if _, err := o.OpenCycle(context.Background(), sc, node, nil, o.Config.CycleSpec("n1", nil)); err != nil {
		t.Fatal(err)
	}
	var list v1alpha1.NodeCycleList
	if err := c.List(context.Background(), &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("%v %d", err, len(list.Items))
	}
	if p := list.Items[0].Annotations[v1alpha1.AnnotationPriority]; p != "7" {
		t.Fatalf("priority %q, want 7", p)
	}
}

// The waiting taint of a node no NodeCycle waits for any more (deleted
// while Pending, or a crash between the end and the taint's removal) is
// taken off; one whose NodeCycle still waits keeps it.
func TestALeftWaitingTaintIsTakenOff(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: "other", Effect: corev1.TaintEffectNoSchedule}, nodes.WaitingTaint}},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: "boot-1"}}}
	waiting := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "n1-a-1"},
		Spec: v1alpha1.NodeCycleSpec{NodeName: "n1", BootID: "boot-1", Attempt: 1}, Status: v1alpha1.NodeCycleStatus{Phase: v1alpha1.PhasePending}}
	o, sc, c := newTestOpener(metav1.Now().Time, node, waiting)
	if n := settleNode(t, o, sc, c, "n1"); !nodes.HasWaitingTaint(n) {
		t.Fatal("the taint of a waiting node was taken off")
	}
	if err := c.Delete(context.Background(), waiting); err != nil {
		t.Fatal(err)
	}
	n := settleNode(t, o, sc, c, "n1")
	if nodes.HasWaitingTaint(n) || len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "other" {
		t.Fatalf("taints %v, want only the other one", n.Spec.Taints)
	}
}

// The lifecycle conditions of a NodeCycle deleted while it waited (or
// worked) are cleared once no NodeCycle works on the node; the kubelet's
// stay as they are.
func TestLeftLifecycleConditionsAreCleared(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: "boot-1"}, Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"},
			{Type: v1alpha1.ConditionMaintenancePlanned, Status: corev1.ConditionTrue, Reason: string(v1alpha1.ReasonWaitingForSlot)},
			{Type: v1alpha1.ConditionMaintenanceInProgress, Status: corev1.ConditionFalse, Reason: string(v1alpha1.ReasonMaintenancePending)},
		}}}
	waiting := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "n1-a-1"},
		Spec: v1alpha1.NodeCycleSpec{NodeName: "n1", BootID: "boot-1", Attempt: 1}, Status: v1alpha1.NodeCycleStatus{Phase: v1alpha1.PhasePending}}
	o, sc, c := newTestOpener(metav1.Now().Time, node, waiting)
	if n := settleNode(t, o, sc, c, "n1"); !nodes.IsConditionTrue(n, v1alpha1.ConditionMaintenancePlanned) {
		t.Fatal("MaintenancePlanned of a waiting NodeCycle was cleared")
	}
	if err := c.Delete(context.Background(), waiting); err != nil {
		t.Fatal(err)
	}
	n := settleNode(t, o, sc, c, "n1")
	for _, typ := range nodes.LifecycleConditions {
		if got := nodes.Condition(n, typ); got == nil || got.Status != corev1.ConditionFalse || got.Reason != string(v1alpha1.ReasonNoMaintenance) {
			t.Errorf("%s: %+v, want False/NoMaintenance", typ, got)
		}
	}
	if !nodes.IsReady(n) || nodes.Condition(n, corev1.NodeReady).Reason != "KubeletReady" {
		t.Errorf("Ready changed: %+v", nodes.Condition(n, corev1.NodeReady))
	}
}
