package nodes

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// BootID is the boot the kubelet reports: the proof of a reboot is that it
// changed.
func BootID(node *corev1.Node) string { return node.Status.NodeInfo.BootID }

// Cordon marks the node unschedulable and the cordon as owner's (a
// NodeCycle, namespace/name), so that only nodecycle's own cordons are ever
// lifted. The optimistic lock makes it fail with a conflict rather than
// overwrite a change made since the node was read.
func Cordon(ctx context.Context, c client.Client, node *corev1.Node, owner string) error {
	before := node.DeepCopy()
	node.Spec.Unschedulable = true
	metav1.SetMetaDataAnnotation(&node.ObjectMeta, v1alpha1.AnnotationCordonedBy, owner)
	return c.Patch(ctx, node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// Uncordon lifts nodecycle's cordon. The optimistic lock makes it fail
// rather than overwrite a change made since the node was read (an admin
// cordoning it again, say).
func Uncordon(ctx context.Context, c client.Client, node *corev1.Node) error {
	before := node.DeepCopy()
	node.Spec.Unschedulable = false
	delete(node.Annotations, v1alpha1.AnnotationCordonedBy)
	// A reboot request done with goes in the same write.
	delete(node.Annotations, v1alpha1.AnnotationRebootRequest)
	return c.Patch(ctx, node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// SetAnnotations sets (value) or removes (nil) annotations on an object,
// and touches nothing else.
func SetAnnotations(ctx context.Context, c client.Client, obj client.Object, set map[string]*string) error {
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, AnnotationsPatch(set)))
}

// SetMaintenanceCondition writes the MaintenanceInProgress condition on the
// Node when it says something new.
func SetMaintenanceCondition(ctx context.Context, c client.Client, node *corev1.Node, status corev1.ConditionStatus, reason v1alpha1.Reason, message string, now time.Time) error {
	want := corev1.NodeCondition{Type: v1alpha1.ConditionMaintenanceInProgress, Status: status, Reason: string(reason), Message: message}
	current := Condition(node, v1alpha1.ConditionMaintenanceInProgress)
	if SameCondition(current, want) {
		return nil
	}
	patch := ConditionPatch(current, want, now)
	if err := c.Status().Patch(ctx, node, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return fmt.Errorf("setting condition %s on node %s: %w", v1alpha1.ConditionMaintenanceInProgress, node.Name, err)
	}
	return nil
}

// Strip is a cache transform that drops what nodecycle never reads from a
// Node (managed fields, the image list), which is most of its size.
func Strip(obj any) (any, error) {
	if n, ok := obj.(*corev1.Node); ok {
		n.ManagedFields = nil
		n.Status.Images = nil
	}
	return obj, nil
}

// IndexCordonedBy is the cache index of Nodes that carry nodecycle's cordon.
const IndexCordonedBy = "metadata.annotations.cordonedBy"

// CordonedByNodecycle is IndexCordonedBy's value function.
func CordonedByNodecycle(o client.Object) []string {
	if _, ok := o.GetAnnotations()[v1alpha1.AnnotationCordonedBy]; ok {
		return []string{"yes"}
	}
	return nil
}

// CordonedByNodecycleSelector selects IndexCordonedBy's Nodes in a List.
var CordonedByNodecycleSelector = client.MatchingFields{IndexCordonedBy: "yes"}
