package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// Field indexes of the manager's cache.
const (
	// indexNodeName indexes NodeCycles by spec.nodeName.
	indexNodeName = "spec.nodeName"
	// indexCordonedBy indexes Nodes that carry nodecycle's cordon annotation.
	indexCordonedBy = "metadata.annotations.cordonedBy"
	indexYes        = "yes"
)

func durationOf(d time.Duration) metav1.Duration { return metav1.Duration{Duration: d} }

// nodeCycleName is deterministic for (cluster, node, boot, attempt): two
// reconciles that race to open the same operation collide on the name
// instead of opening two. A Cluster API node's name starts with its
// cluster's, since one namespace may hold several clusters.
func nodeCycleName(cluster, node, bootID string, attempt int32) string {
	if cluster != "" {
		node = cluster + "-" + node
	}
	sum := sha256.Sum256([]byte(bootID))
	suffix := fmt.Sprintf("-%s-%d", hex.EncodeToString(sum[:])[:8], attempt)
	if len(node)+len(suffix) > 253 {
		node = node[:253-len(suffix)]
	}
	return node + suffix
}

// cyclesOfNode returns the node's NodeCycles, newest first.
func cyclesOfNode(ctx context.Context, r client.Reader, namespace, cluster, node string) ([]v1alpha1.NodeCycle, error) {
	var list v1alpha1.NodeCycleList
	if err := r.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{indexNodeName: node}); err != nil {
		return nil, fmt.Errorf("listing NodeCycles of node %s: %w", node, err)
	}
	items := list.Items[:0]
	for _, nc := range list.Items {
		if nc.Spec.ClusterName == cluster {
			items = append(items, nc)
		}
	}
	sortNewestFirst(items)
	return items, nil
}

func sortNewestFirst(items []v1alpha1.NodeCycle) {
	sort.Slice(items, func(i, j int) bool {
		ti, tj := items[i].CreationTimestamp, items[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return tj.Before(&ti)
		}
		if items[i].Spec.Attempt != items[j].Spec.Attempt {
			return items[i].Spec.Attempt > items[j].Spec.Attempt
		}
		return items[i].Name > items[j].Name
	})
}

// openCycle returns the node's NodeCycle that is not finished, or nil.
func openCycle(items []v1alpha1.NodeCycle) *v1alpha1.NodeCycle {
	for i := range items {
		if !items[i].Status.Phase.Terminal() {
			return &items[i]
		}
	}
	return nil
}

func bootID(node *corev1.Node) string { return node.Status.NodeInfo.BootID }

// uncordonPatch lifts nodecycle's cordon. The resourceVersion precondition
// makes it fail rather than overwrite a change made since the node was read
// (an admin cordoning it again, say).
func uncordon(ctx context.Context, c client.Client, node *corev1.Node) error {
	patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q,"annotations":{%q:null}},"spec":{"unschedulable":null}}`,
		node.ResourceVersion, v1alpha1.AnnotationCordonedBy)
	return c.Patch(ctx, node, client.RawPatch(types.MergePatchType, []byte(patch)))
}

// setAnnotations sets (value) or removes (nil) annotations on an object.
func setAnnotations(ctx context.Context, c client.Client, obj client.Object, set map[string]*string) error {
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, nodes.AnnotationsPatch(set)))
}

// setMaintenanceCondition writes the MaintenanceInProgress condition on the
// Node when it says something new.
func setMaintenanceCondition(ctx context.Context, c client.Client, node *corev1.Node, status corev1.ConditionStatus, reason, message string, now time.Time) error {
	want := corev1.NodeCondition{Type: v1alpha1.ConditionMaintenanceInProgress, Status: status, Reason: reason, Message: message}
	current := nodes.Condition(node, v1alpha1.ConditionMaintenanceInProgress)
	if nodes.SameCondition(current, want) {
		return nil
	}
	patch := nodes.ConditionPatch(current, want, now)
	if err := c.Status().Patch(ctx, node, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return fmt.Errorf("setting condition %s on node %s: %w", v1alpha1.ConditionMaintenanceInProgress, node.Name, err)
	}
	return nil
}
