package cycles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// Field indexes of NodeCycles in the manager's cache.
const (
	IndexNodeName    = "spec.nodeName"
	IndexClusterName = "spec.clusterName"
)

// SetupIndexes adds the NodeCycle indexes to the manager's cache.
func SetupIndexes(ctx context.Context, idx client.FieldIndexer) error {
	for field, value := range map[string]func(*v1alpha1.NodeCycle) string{
		IndexNodeName:    func(nc *v1alpha1.NodeCycle) string { return nc.Spec.NodeName },
		IndexClusterName: func(nc *v1alpha1.NodeCycle) string { return nc.Spec.ClusterName },
	} {
		if err := idx.IndexField(ctx, &v1alpha1.NodeCycle{}, field, func(o client.Object) []string {
			return []string{value(o.(*v1alpha1.NodeCycle))}
		}); err != nil {
			return fmt.Errorf("indexing NodeCycles by %s: %w", field, err)
		}
	}
	return nil
}

// Name is deterministic for (cluster, node, boot, attempt): two reconciles
// that race to open the same operation collide on the name instead of
// opening two. A Cluster API node's name starts with its cluster's, since
// one namespace may hold several clusters.
func Name(cluster, node, bootID string, attempt int32) string {
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

// InCluster returns the NodeCycles of one cluster ("" is the cluster the
// manager runs in) from the manager's cache, through its index.
func InCluster(ctx context.Context, c client.Reader, namespace, cluster string) ([]v1alpha1.NodeCycle, error) {
	var list v1alpha1.NodeCycleList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{IndexClusterName: cluster}); err != nil {
		return nil, fmt.Errorf("listing NodeCycles of cluster %q: %w", cluster, err)
	}
	return list.Items, nil
}

// InClusterLive is InCluster read from the API server, for decisions that
// must not act on a stale cache (taking a slot). The API server cannot
// select NodeCycles by cluster, so they are filtered here.
func InClusterLive(ctx context.Context, apiReader client.Reader, namespace, cluster string) ([]v1alpha1.NodeCycle, error) {
	var list v1alpha1.NodeCycleList
	if err := apiReader.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing NodeCycles: %w", err)
	}
	items := list.Items[:0]
	for _, nc := range list.Items {
		if nc.Spec.ClusterName == cluster {
			items = append(items, nc)
		}
	}
	return items, nil
}

// OfNode returns the node's NodeCycles from the cache, newest first.
func OfNode(ctx context.Context, c client.Reader, namespace, cluster, node string) ([]v1alpha1.NodeCycle, error) {
	var list v1alpha1.NodeCycleList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{IndexNodeName: node}); err != nil {
		return nil, fmt.Errorf("listing NodeCycles of node %s: %w", node, err)
	}
	items := list.Items[:0]
	for _, nc := range list.Items {
		if nc.Spec.ClusterName == cluster {
			items = append(items, nc)
		}
	}
	SortNewestFirst(items)
	return items, nil
}

// SortNewestFirst orders a node's NodeCycles, the newest first.
func SortNewestFirst(items []v1alpha1.NodeCycle) {
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

// Open returns the NodeCycle of items that is not finished, or nil.
func Open(items []v1alpha1.NodeCycle) *v1alpha1.NodeCycle {
	for i := range items {
		if !items[i].Status.Phase.Terminal() {
			return &items[i]
		}
	}
	return nil
}

// RebootPending says that the agent acknowledged nc's reboot request and
// the node still runs the boot nc recorded before asking: the reboot may
// still come (a slow shutdown, a long POST), so the node stays cordoned.
func RebootPending(node *corev1.Node, nc *v1alpha1.NodeCycle) bool {
	id := nc.Status.RebootRequestID
	return id != "" && node.Annotations[v1alpha1.AnnotationRebootRequest] == id &&
		node.Annotations[v1alpha1.AnnotationRebootAck] == id && node.Status.NodeInfo.BootID == nc.Status.BootIDBefore
}

// Owner is how a NodeCycle signs what it leaves on a Node or Machine
// (nodecycle's cordon, its skip-remediation): namespace/name.
func Owner(nc *v1alpha1.NodeCycle) string { return nc.Namespace + "/" + nc.Name }

// RemediationResumeDelay is how long after a NodeCycle ended, its node's
// lifecycle conditions cleared, nodecycle lifts the skip-remediation it set
// on the Machine. A MachineHealthCheck reads the node from its own cache of
// the workload cluster, the Machine from another: lifted at once, the
// Machine's change can reach it before the node's, and it would see the
// maintenance conditions still True past its timeout (a Machine deleted
// right after a verified reboot, seen under load).
const RemediationResumeDelay = 10 * time.Second
