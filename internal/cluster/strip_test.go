package cluster

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// The cache keeps of a Machine what nodecycle reads, and drops the rest.
func TestStripMachineKeepsWhatIsRead(t *testing.T) {
	m := &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: "m", Labels: map[string]string{clusterv1.ClusterNameLabel: "c"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "capi"}}},
		Spec: clusterv1.MachineSpec{ClusterName: "c", ProviderID: "fleet://c/n"},
		Status: clusterv1.MachineStatus{
			NodeRef:  clusterv1.MachineNodeReference{Name: "n"},
			NodeInfo: &corev1.NodeSystemInfo{KernelVersion: "6.1"},
			Phase:    string(clusterv1.MachinePhaseRunning),
			Conditions: []metav1.Condition{
				{Type: clusterv1.ReadyCondition, Status: metav1.ConditionTrue},
				{Type: clusterv1.MachineUpdatingCondition, Status: metav1.ConditionTrue},
			},
			Addresses: clusterv1.MachineAddresses{{Type: clusterv1.MachineInternalIP, Address: "10.0.0.1"}},
		},
	}
	out, err := StripMachine(m)
	if err != nil {
		t.Fatal(err)
	}
	s := out.(*clusterv1.Machine)
	if s.Status.NodeRef.Name != "n" || s.Spec.ProviderID != "fleet://c/n" || s.Labels[clusterv1.ClusterNameLabel] != "c" || s.Status.Phase != string(clusterv1.MachinePhaseRunning) {
		t.Fatalf("stripped what is read: %+v", s)
	}
	if len(s.Status.Conditions) != 1 || s.Status.Conditions[0].Type != clusterv1.MachineUpdatingCondition {
		t.Fatalf("want only the Updating condition, got %v", s.Status.Conditions)
	}
	if s.ManagedFields != nil || s.Status.NodeInfo != nil || s.Status.Addresses != nil {
		t.Fatalf("kept what is never read: %+v", s)
	}
	if other, _ := StripMachine(&corev1.Node{}); other == nil {
		t.Fatal("another kind is passed through")
	}
}

// Connections connect only to the Clusters nodecycle asked for.
func TestConnectFilter(t *testing.T) {
	asked := &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{v1alpha1.AnnotationConnect: "true"}}}
	if !ConnectFilter(asked) || ConnectFilter(&clusterv1.Cluster{}) {
		t.Fatal("ConnectFilter must pass exactly the Clusters annotated " + v1alpha1.AnnotationConnect)
	}
}
