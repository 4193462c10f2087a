package node

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/settings"
)

// H13: in the local mode too, a control-plane node's NodeCycle says so,
// which makes the admission cycle it alone whatever --max-concurrent says.
func TestAControlPlaneNodeIsCycledAlone(t *testing.T) {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	var objs []client.Object
	for name, labels := range map[string]map[string]string{"cp-1": {"node-role.kubernetes.io/control-plane": ""}, "worker-1": {}} {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{v1alpha1.AnnotationCheckedBoot: "b"}},
			Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: "b"}, Conditions: []corev1.NodeCondition{
				{Type: v1alpha1.ConditionRebootRequired, Status: corev1.ConditionTrue}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}})
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithIndex(&v1alpha1.NodeCycle{}, cycles.IndexNodeName, func(o client.Object) []string { return []string{o.(*v1alpha1.NodeCycle).Spec.NodeName} }).
		Build()
	cfg := settings.DefaultConfig()
	cfg.MaxConcurrent = 3
	r := &Reconciler{Opener: cycles.Opener{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(10), Clock: clocktesting.NewFakeClock(metav1.Now().Time), Config: cfg}}
	for _, n := range []string{"cp-1", "worker-1"} {
		if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKey{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	var list v1alpha1.NodeCycleList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 {
		t.Fatalf("%d NodeCycles, want 2", len(list.Items))
	}
	for _, nc := range list.Items {
		if want := nc.Spec.NodeName == "cp-1"; nc.Spec.ControlPlane != want {
			t.Errorf("NodeCycle of %s: controlPlane %t, want %t", nc.Spec.NodeName, nc.Spec.ControlPlane, want)
		}
	}
}
