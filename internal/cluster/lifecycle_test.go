package cluster

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
)

// Cluster API's own work holds new maintenance, and says which.
func TestLifecycleHold(t *testing.T) {
	cond := func(typ string, s metav1.ConditionStatus) []metav1.Condition {
		return []metav1.Condition{{Type: typ, Status: s, Message: "* MachineDeployment pool: 1 Machine not up-to-date\n* more"}}
	}
	quiet := &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Status: clusterv1.ClusterStatus{Conditions: cond(clusterv1.ClusterRollingOutCondition, metav1.ConditionFalse)}}
	for _, tc := range []struct {
		name     string
		cluster  *clusterv1.Cluster
		md       *clusterv1.MachineDeployment
		machines []clusterv1.Machine
		updating bool
		want     string
	}{
		{name: "nothing going on", cluster: quiet, want: ""},
		{name: "the Cluster rolls out", cluster: &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Status: clusterv1.ClusterStatus{Conditions: cond(clusterv1.ClusterRollingOutCondition, metav1.ConditionTrue)}},
			want: "Cluster prod is rolling out (* MachineDeployment pool: 1 Machine not up-to-date)"},
		{name: "the Cluster remediates", cluster: &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Status: clusterv1.ClusterStatus{Conditions: cond(clusterv1.ClusterRemediatingCondition, metav1.ConditionTrue)}},
			want: "Cluster prod is remediating Machines (* MachineDeployment pool: 1 Machine not up-to-date)"},
		{name: "a Machine updates in place (condition)", cluster: quiet,
			machines: []clusterv1.Machine{{ObjectMeta: metav1.ObjectMeta{Name: "m1"}}, {ObjectMeta: metav1.ObjectMeta{Name: "m2"}, Status: clusterv1.MachineStatus{Conditions: cond(clusterv1.MachineUpdatingCondition, metav1.ConditionTrue)}}},
			want:     "Machine m2 of Cluster prod is updating in place"},
		{name: "a Machine updates in place (annotation)", cluster: quiet,
			machines: []clusterv1.Machine{{ObjectMeta: metav1.ObjectMeta{Name: "m3", Annotations: map[string]string{clusterv1.UpdateInProgressAnnotation: ""}}}},
			want:     "Machine m3 of Cluster prod is updating in place"},
		{name: "its MachineDeployment rolls out", cluster: quiet,
			md:   &clusterv1.MachineDeployment{ObjectMeta: metav1.ObjectMeta{Name: "pool"}, Status: clusterv1.MachineDeploymentStatus{Conditions: cond(clusterv1.MachineDeploymentRollingOutCondition, metav1.ConditionTrue)}},
			want: "MachineDeployment pool is rolling out (* MachineDeployment pool: 1 Machine not up-to-date)"},
		{name: "an in-place update nodecycle does is the rollout", updating: true,
			cluster:  &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Status: clusterv1.ClusterStatus{Conditions: cond(clusterv1.ClusterRollingOutCondition, metav1.ConditionTrue)}},
			md:       &clusterv1.MachineDeployment{ObjectMeta: metav1.ObjectMeta{Name: "pool"}, Status: clusterv1.MachineDeploymentStatus{Conditions: cond(clusterv1.MachineDeploymentRollingOutCondition, metav1.ConditionTrue)}},
			machines: []clusterv1.Machine{{ObjectMeta: metav1.ObjectMeta{Name: "m3", Annotations: map[string]string{clusterv1.UpdateInProgressAnnotation: ""}}}},
			want:     ""},
		{name: "a remediation holds an in-place update", updating: true,
			cluster: &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Status: clusterv1.ClusterStatus{Conditions: cond(clusterv1.ClusterRemediatingCondition, metav1.ConditionTrue)}},
			want:    "Cluster prod is remediating Machines (* MachineDeployment pool: 1 Machine not up-to-date)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LifecycleHold(tc.cluster, tc.md, tc.machines, tc.updating); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
