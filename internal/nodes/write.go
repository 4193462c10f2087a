package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
// lifted, and puts labels on it (a policy's hooks.labels): the keys it adds
// are listed in nodecycle.io/maintenance-labels for the uncordon to remove;
// a label the node already carries is left as it is. The optimistic lock
// makes it fail with a conflict rather than overwrite a change made since
// the node was read.
func Cordon(ctx context.Context, c client.Client, node *corev1.Node, owner string, labels map[string]string) error {
	before := node.DeepCopy()
	node.Spec.Unschedulable = true
	metav1.SetMetaDataAnnotation(&node.ObjectMeta, v1alpha1.AnnotationCordonedBy, owner)
	var added []string
	for k, v := range labels {
		if _, ok := node.Labels[k]; ok {
			continue
		}
		metav1.SetMetaDataLabel(&node.ObjectMeta, k, v)
		added = append(added, k)
	}
	if len(added) > 0 {
		slices.Sort(added)
		metav1.SetMetaDataAnnotation(&node.ObjectMeta, v1alpha1.AnnotationMaintenanceLabels, strings.Join(added, ","))
	}
	// The cordon replaces the taint of a waiting node, in the same write.
	node.Spec.Taints = withoutWaitingTaint(node.Spec.Taints)
	return c.Patch(ctx, node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// WaitingTaint is the taint of a node whose NodeCycle waits.
var WaitingTaint = corev1.Taint{Key: v1alpha1.TaintMaintenancePending, Effect: corev1.TaintEffectPreferNoSchedule}

// HasWaitingTaint says whether the node carries WaitingTaint.
func HasWaitingTaint(node *corev1.Node) bool {
	return slices.ContainsFunc(node.Spec.Taints, isWaitingTaint)
}

func isWaitingTaint(t corev1.Taint) bool { return WaitingTaint.MatchTaint(&t) }

func withoutWaitingTaint(taints []corev1.Taint) []corev1.Taint {
	if !slices.ContainsFunc(taints, isWaitingTaint) {
		return taints
	}
	return slices.DeleteFunc(slices.Clone(taints), isWaitingTaint)
}

// SetWaitingTaint puts WaitingTaint on the node (on) or takes it off; the
// taint list is written whole, under the optimistic lock (a conflict: read
// again and retry).
func SetWaitingTaint(ctx context.Context, c client.Client, node *corev1.Node, on bool) error {
	if HasWaitingTaint(node) == on {
		return nil
	}
	before := node.DeepCopy()
	if on {
		node.Spec.Taints = append(slices.Clone(node.Spec.Taints), WaitingTaint)
	} else {
		node.Spec.Taints = withoutWaitingTaint(node.Spec.Taints)
	}
	return c.Patch(ctx, node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// Hooks lists the names of the hooks the node holds: the rest of each
// annotation key with prefix (PrefixPreRebootHook, PrefixPostRebootHook),
// sorted.
func Hooks(node *corev1.Node, prefix string) []string {
	var names []string
	for k := range node.Annotations {
		if name, ok := strings.CutPrefix(k, prefix); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Uncordon lifts nodecycle's cordon, as the node was read: a JSON patch
// whose test operations require nodecycle's cordon annotation (and the
// reboot request, when one was read) to be unchanged. Unlike a
// resourceVersion lock, a write to any other field since the read (the
// kubelet's status, the agent's condition, as a node comes back from a
// reboot) does not refuse it; a change to these fields (an admin taking
// the cordon over by removing the annotation, say) does, as a conflict.
func Uncordon(ctx context.Context, c client.Client, node *corev1.Node) error {
	owner, ok := node.Annotations[v1alpha1.AnnotationCordonedBy]
	if !ok {
		return fmt.Errorf("node %s does not carry nodecycle's cordon", node.Name)
	}
	ops := []jsonPatchOp{
		{Op: "test", Path: annotationPath(v1alpha1.AnnotationCordonedBy), Value: owner},
		{Op: "remove", Path: annotationPath(v1alpha1.AnnotationCordonedBy)},
		{Op: "add", Path: "/spec/unschedulable", Value: false},
	}
	// A reboot request done with goes in the same write.
	if id, ok := node.Annotations[v1alpha1.AnnotationRebootRequest]; ok {
		ops = append(ops,
			jsonPatchOp{Op: "test", Path: annotationPath(v1alpha1.AnnotationRebootRequest), Value: id},
			jsonPatchOp{Op: "remove", Path: annotationPath(v1alpha1.AnnotationRebootRequest)})
	}
	// So do its signature and the content of an in-place update (the
	// agent's status of it stays, as the record of what the node last
	// applied).
	for _, k := range []string{v1alpha1.AnnotationRebootSignature, v1alpha1.AnnotationUpdate} {
		if _, ok := node.Annotations[k]; ok {
			ops = append(ops, jsonPatchOp{Op: "remove", Path: annotationPath(k)})
		}
	}
	// So do the maintenance labels nodecycle put on with its cordon.
	if keys, ok := node.Annotations[v1alpha1.AnnotationMaintenanceLabels]; ok {
		ops = append(ops,
			jsonPatchOp{Op: "test", Path: annotationPath(v1alpha1.AnnotationMaintenanceLabels), Value: keys},
			jsonPatchOp{Op: "remove", Path: annotationPath(v1alpha1.AnnotationMaintenanceLabels)})
		for _, k := range strings.Split(keys, ",") {
			if v, ok := node.Labels[k]; ok && k != "" {
				ops = append(ops,
					jsonPatchOp{Op: "test", Path: labelPath(k), Value: v},
					jsonPatchOp{Op: "remove", Path: labelPath(k)})
			}
		}
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	err = c.Patch(ctx, node, client.RawPatch(types.JSONPatchType, patch))
	if failedTest(err) {
		return apierrors.NewConflict(corev1.Resource("nodes"), node.Name, err)
	}
	return err
}

// failedTest tells a JSON patch refused because one of its test operations
// failed (what changed since the read: a conflict, retried at once) from
// any other refusal the API server answers with 422 Invalid (an admission
// policy, a validation): those are errors, retried with backoff. The API
// server answers a patch it could not apply with the generic 422 and no
// details (it drops the patch library's message); every other refusal names
// the object or carries causes.
func failedTest(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) {
		return false
	}
	s := status.Status()
	d := s.Details
	return s.Message == unappliedPatch && (d == nil || d.Kind == "" && d.Name == "" && len(d.Causes) == 0)
}

// unappliedPatch is the message of the API server's 422 for a patch that
// did not apply (apimachinery's NewGenericServerResponse).
const unappliedPatch = "the server rejected our request due to an error in our request"

// jsonPatchOp is one operation of a JSON patch (RFC 6902).
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// annotationPath and labelPath are the JSON pointers of an annotation and
// a label: "/" in a key is written "~1".
func annotationPath(key string) string { return "/metadata/annotations/" + pointerEscape(key) }
func labelPath(key string) string      { return "/metadata/labels/" + pointerEscape(key) }

func pointerEscape(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

// SetAnnotations sets (value) or removes (nil) annotations on an object,
// and touches nothing else.
func SetAnnotations(ctx context.Context, c client.Client, obj client.Object, set map[string]*string) error {
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, AnnotationsPatch(set)))
}

// SetMaintenanceCondition writes the MaintenanceInProgress condition on the
// Node when it says something new.
func SetMaintenanceCondition(ctx context.Context, c client.Client, node *corev1.Node, status corev1.ConditionStatus, reason v1alpha1.Reason, message string, now time.Time) error {
	return SetConditions(ctx, c, node, []corev1.NodeCondition{{Type: v1alpha1.ConditionMaintenanceInProgress, Status: status, Reason: string(reason), Message: message}}, now)
}

// SetConditions writes, in one patch of the Node's status, the conditions
// of want that say something new; none: no write.
func SetConditions(ctx context.Context, c client.Client, node *corev1.Node, want []corev1.NodeCondition, now time.Time) error {
	var changed []corev1.NodeCondition
	for _, w := range want {
		if !SameCondition(Condition(node, w.Type), w) {
			changed = append(changed, w)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	return PatchConditions(ctx, c, node, changed, now)
}

// PatchConditions writes the conditions in one patch of the Node's status,
// their heartbeat now.
func PatchConditions(ctx context.Context, c client.Client, node *corev1.Node, conditions []corev1.NodeCondition, now time.Time) error {
	current := make([]*corev1.NodeCondition, len(conditions))
	for i, w := range conditions {
		current[i] = Condition(node, w.Type)
	}
	patch := ConditionsPatch(current, conditions, now)
	if err := c.Status().Patch(ctx, node, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return fmt.Errorf("setting conditions on node %s: %w", node.Name, err)
	}
	return nil
}

// LifecycleConditions are the Node conditions the manager writes about a
// node's maintenance: nodecycle's own MaintenanceInProgress and
// Kubernetes' node lifecycle conditions.
var LifecycleConditions = []corev1.NodeConditionType{
	v1alpha1.ConditionMaintenancePlanned,
	v1alpha1.ConditionDrainInProgress,
	v1alpha1.ConditionDrained,
	v1alpha1.ConditionMaintenanceInProgress,
}

// InMaintenance reports whether one of the LifecycleConditions is True on the node.
func InMaintenance(node *corev1.Node) bool {
	for _, t := range LifecycleConditions {
		if IsConditionTrue(node, t) {
			return true
		}
	}
	return false
}

// Strip is a cache transform that keeps of a Node only what nodecycle
// reads (its metadata without managed fields, spec, the boot ID, and the
// conditions Ready, RebootRequired and the LifecycleConditions): the image
// list, managed fields, capacity, addresses and the kubelet's other
// conditions are most of a Node's size, times every Node of every
// cluster. nodecycle only patches Nodes (never updates them whole), so what
// the cache lacks is never written back.
func Strip(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	n.ManagedFields = nil
	n.Status = corev1.NodeStatus{
		NodeInfo:   corev1.NodeSystemInfo{BootID: n.Status.NodeInfo.BootID},
		Conditions: slices.DeleteFunc(n.Status.Conditions, func(c corev1.NodeCondition) bool { return !keptConditions[c.Type] }),
		Phase:      n.Status.Phase,
	}
	return n, nil
}

// keptConditions are the Node conditions nodecycle reads.
var keptConditions = map[corev1.NodeConditionType]bool{
	corev1.NodeReady:                        true,
	v1alpha1.ConditionRebootRequired:        true,
	v1alpha1.ConditionMaintenanceInProgress: true,
	v1alpha1.ConditionMaintenancePlanned:    true,
	v1alpha1.ConditionDrainInProgress:       true,
	v1alpha1.ConditionDrained:               true,
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
