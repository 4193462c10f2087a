package nodes

import (
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition returns the Node's condition of type t, or nil.
func Condition(node *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == t {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

// IsConditionTrue reports whether the Node's condition of type t is True.
func IsConditionTrue(node *corev1.Node, t corev1.NodeConditionType) bool {
	c := Condition(node, t)
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsReady reports whether the Node is Ready=True.
func IsReady(node *corev1.Node) bool {
	return IsConditionTrue(node, corev1.NodeReady)
}

// SameCondition reports whether c already says what want says (status, reason
// and message), so writing want would change nothing a person can see.
func SameCondition(c *corev1.NodeCondition, want corev1.NodeCondition) bool {
	return c != nil && c.Status == want.Status && c.Reason == want.Reason && c.Message == want.Message
}

// ConditionPatch builds a strategic merge patch for the nodes/status
// subresource that sets exactly one condition. Node conditions merge on their
// type, so the other conditions (kubelet's, other controllers') are untouched.
// The transition time moves only when the status changes.
func ConditionPatch(current *corev1.NodeCondition, want corev1.NodeCondition, now time.Time) []byte {
	return ConditionsPatch([]*corev1.NodeCondition{current}, []corev1.NodeCondition{want}, now)
}

// ConditionsPatch is ConditionPatch for several conditions at once:
// current[i] is the Node's condition of want[i]'s type (nil: none yet).
func ConditionsPatch(current []*corev1.NodeCondition, want []corev1.NodeCondition, now time.Time) []byte {
	out := make([]corev1.NodeCondition, len(want))
	for i, w := range want {
		w.LastHeartbeatTime = metav1.NewTime(now)
		w.LastTransitionTime = metav1.NewTime(now)
		if c := current[i]; c != nil && c.Status == w.Status && !c.LastTransitionTime.IsZero() {
			w.LastTransitionTime = c.LastTransitionTime
		}
		out[i] = w
	}
	patch := map[string]any{"status": map[string]any{"conditions": out}}
	b, _ := json.Marshal(patch) // a map of API types always marshals
	return b
}

// AnnotationsPatch builds a JSON merge patch that sets (non-nil value) or
// removes (nil value) annotations, and nothing else.
func AnnotationsPatch(set map[string]*string) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": set}})
	return b
}

// PodReady is the pod's Ready condition, nil when it has none.
func PodReady(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// LabelControlPlane marks the nodes of a cluster's control plane (kubeadm
// and most installers set it).
const LabelControlPlane = "node-role.kubernetes.io/control-plane"
