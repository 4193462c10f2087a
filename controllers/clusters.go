package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
)

// Workload reaches the Nodes and Pods of one cluster.
type Workload struct {
	// Client reads Nodes from a cache and writes to the cluster.
	Client client.Client
	// Reader reads live from the cluster's API server (Pods, and whatever
	// must not be stale).
	Reader client.Reader
}

// Clusters hands out the Workload of a NodeCycle's cluster. The local mode
// has one cluster, the manager's own (name ""); the Cluster API mode one per
// Cluster, reached through Cluster API's ClusterCache.
type Clusters interface {
	// Workload returns the access to the cluster; an error says why the
	// cluster cannot be reached now.
	Workload(ctx context.Context, namespace, cluster string) (Workload, error)
	// WatchNodes sends the cluster's Node events to h of controller c, once
	// per name and connection; a no-op where the manager watches Nodes itself.
	WatchNodes(ctx context.Context, namespace, cluster, name string, c controller.Controller, h handler.EventHandler) error
	// Nodes returns the cached Nodes of every cluster whose Nodes are
	// watched, by cluster ("namespace/name"; "" for the local cluster).
	Nodes(ctx context.Context) (map[string][]corev1.Node, error)
}

// LocalCluster is the cluster the manager runs in.
type LocalCluster struct{ W Workload }

// Workload implements Clusters.
func (l LocalCluster) Workload(_ context.Context, _, cluster string) (Workload, error) {
	if cluster != "" {
		return Workload{}, fmt.Errorf("cluster %q: this manager handles only the cluster it runs in (Cluster API mode is off)", cluster)
	}
	return l.W, nil
}

// WatchNodes implements Clusters: the local manager watches Nodes itself.
func (LocalCluster) WatchNodes(context.Context, string, string, string, controller.Controller, handler.EventHandler) error {
	return nil
}

// Nodes implements Clusters.
func (l LocalCluster) Nodes(ctx context.Context) (map[string][]corev1.Node, error) {
	var list corev1.NodeList
	if err := l.W.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	return map[string][]corev1.Node{"": list.Items}, nil
}
