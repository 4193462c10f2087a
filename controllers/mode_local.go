package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers/node"
	"github.com/nodecycle/nodecycle/controllers/nodecycle"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// localMode handles the nodes of the cluster the manager runs in, with
// its NodeCycles in one namespace.
type localMode struct{ namespace string }

// check implements mode: a cluster serves Nodes.
func (localMode) check(*rest.Config) error { return nil }

// cache implements mode: the NodeCycles of the manager's namespace.
func (m localMode) cache(byObject map[client.Object]cache.ByObject) {
	byObject[&v1alpha1.NodeCycle{}] = cache.ByObject{Namespaces: map[string]cache.Config{m.namespace: {}}}
}

// setup implements mode: the Nodes, indexed by nodecycle's cordon, are the
// manager's own; the node reconciler opens NodeCycles and resolves
// on-demand requests.
func (m localMode) setup(ctx context.Context, mgr ctrl.Manager, opener cycles.Opener) (cluster.Clusters, nodecycle.Resolver, error) {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Node{}, nodes.IndexCordonedBy, nodes.CordonedByNodecycle); err != nil {
		return nil, nil, fmt.Errorf("indexing nodes cordoned by nodecycle: %w", err)
	}
	nr := &node.Reconciler{Opener: opener}
	if err := nr.SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	w := cluster.Workload{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Config: mgr.GetConfig(), AgentNamespace: m.namespace}
	return cluster.Local{W: w, Recorder: opener.Recorder}, nr, nil
}
