package nodes

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// ChangeMatters passes Node updates that can change a decision: not the
// kubelet's heartbeats.
var ChangeMatters = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
		if o == nil || n == nil {
			return true
		}
		return o.Spec.Unschedulable != n.Spec.Unschedulable ||
			BootID(o) != BootID(n) ||
			!equality.Semantic.DeepEqual(o.Labels, n.Labels) ||
			!equality.Semantic.DeepEqual(o.Annotations, n.Annotations) ||
			conditionChanged(o, n, corev1.NodeReady, false) ||
			conditionChanged(o, n, v1alpha1.ConditionRebootRequired, true)
	},
}

// conditionChanged compares a condition's status and, with writes, whether
// it was written again (the agent's first write after a reboot matters).
func conditionChanged(o, n *corev1.Node, t corev1.NodeConditionType, writes bool) bool {
	a, b := Condition(o, t), Condition(n, t)
	if a == nil || b == nil {
		return (a == nil) != (b == nil)
	}
	return a.Status != b.Status || (writes && !a.LastHeartbeatTime.Equal(&b.LastHeartbeatTime))
}
