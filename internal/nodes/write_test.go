package nodes

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// The cache keeps of a Node what nodecycle reads, and nothing else.
func TestStripKeepsWhatNodecycleReads(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "7", Labels: map[string]string{"a": "b"},
			Annotations: map[string]string{v1alpha1.AnnotationCordonedBy: "ns/x"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		Spec: corev1.NodeSpec{Unschedulable: true, ProviderID: "vsphere://1", Taints: []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{
			NodeInfo:  corev1.NodeSystemInfo{BootID: "boot-1", KernelVersion: "6.1"},
			Capacity:  corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}},
			Images:    []corev1.ContainerImage{{Names: []string{"x"}}},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Message: "kubelet has sufficient memory available"},
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
				{Type: v1alpha1.ConditionRebootRequired, Status: corev1.ConditionTrue},
				{Type: v1alpha1.ConditionMaintenanceInProgress, Status: corev1.ConditionFalse, Reason: "MaintenanceCompleted"},
			},
		},
	}
	out, err := Strip(n)
	if err != nil {
		t.Fatal(err)
	}
	s := out.(*corev1.Node)
	if s.Name != "n1" || s.ResourceVersion != "7" || s.Labels["a"] != "b" || s.Annotations[v1alpha1.AnnotationCordonedBy] != "ns/x" ||
		!s.Spec.Unschedulable || s.Spec.ProviderID != "vsphere://1" || len(s.Spec.Taints) != 1 || BootID(s) != "boot-1" {
		t.Fatalf("lost what nodecycle reads: %+v", s)
	}
	if !IsReady(s) || !IsConditionTrue(s, v1alpha1.ConditionRebootRequired) || Condition(s, v1alpha1.ConditionMaintenanceInProgress).Reason != "MaintenanceCompleted" {
		t.Fatalf("conditions %+v", s.Status.Conditions)
	}
	if s.ManagedFields != nil || s.Status.Images != nil || s.Status.Capacity != nil || s.Status.Addresses != nil ||
		s.Status.NodeInfo.KernelVersion != "" || len(s.Status.Conditions) != 3 {
		t.Fatalf("kept what nodecycle never reads: %+v", s.Status)
	}
	if other, _ := Strip(&corev1.Pod{}); other == nil {
		t.Fatal("a non-Node was dropped")
	}
}
