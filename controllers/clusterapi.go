package controllers

import (
	"context"
	"errors"
	"sync"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/controllers/clustercache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// ClusterAPIClusters reaches the workload clusters of Cluster API Clusters
// through Cluster API's ClusterCache (the <cluster>-kubeconfig Secret). A
// NodeCycle's cluster is the Cluster of that name in its namespace.
type ClusterAPIClusters struct {
	cache clustercache.ClusterCache
	// watched holds the clusters whose Nodes a watch was asked for.
	watched *sync.Map
}

// NewClusterAPIClusters returns the Clusters of a ClusterCache.
func NewClusterAPIClusters(cc clustercache.ClusterCache) ClusterAPIClusters {
	return ClusterAPIClusters{cache: cc, watched: &sync.Map{}}
}

// Workload implements Clusters.
func (c ClusterAPIClusters) Workload(ctx context.Context, namespace, cluster string) (Workload, error) {
	if cluster == "" {
		return Workload{}, errors.New("the NodeCycle names no cluster; in Cluster API mode every NodeCycle belongs to a Cluster")
	}
	key := client.ObjectKey{Namespace: namespace, Name: cluster}
	cached, err := c.cache.GetClient(ctx, key)
	if err != nil {
		return Workload{}, err
	}
	live, err := c.cache.GetUncachedClient(ctx, key)
	if err != nil {
		return Workload{}, err
	}
	return Workload{Client: cached, Reader: live}, nil
}

// WatchNodes implements Clusters.
func (c ClusterAPIClusters) WatchNodes(ctx context.Context, namespace, cluster, name string, ctrl controller.Controller, h handler.EventHandler) error {
	c.watched.Store(client.ObjectKey{Namespace: namespace, Name: cluster}, true)
	return c.cache.Watch(ctx, client.ObjectKey{Namespace: namespace, Name: cluster}, clustercache.NewWatcher(clustercache.WatcherOptions{
		Name: name, Watcher: ctrl, Kind: &corev1.Node{}, EventHandler: h,
	}))
}

// Nodes implements Clusters: the cached Nodes of the connected clusters
// whose Nodes nodecycle watches (listing another would start a watch).
func (c ClusterAPIClusters) Nodes(ctx context.Context) (map[string][]corev1.Node, error) {
	out := map[string][]corev1.Node{}
	var errs []error
	c.watched.Range(func(k, _ any) bool {
		key := k.(client.ObjectKey)
		cl, err := c.cache.GetClient(ctx, key)
		if err != nil {
			return true // not connected now: no value rather than a stale one
		}
		var list corev1.NodeList
		if err := cl.List(ctx, &list); err != nil {
			errs = append(errs, err)
			return true
		}
		// A Node that Cluster API says belongs to another Cluster (two
		// Clusters pointed at one API server) is not this cluster's.
		mine := list.Items[:0]
		for _, n := range list.Items {
			if name, ok := n.Annotations[clusterv1.ClusterNameAnnotation]; !ok || (name == key.Name && n.Annotations[clusterv1.ClusterNamespaceAnnotation] == key.Namespace) {
				mine = append(mine, n)
			}
		}
		out[key.String()] = mine
		return true
	})
	return out, errors.Join(errs...)
}

// ClusterCacheOptions are the per-cluster cache settings nodecycle needs:
// Nodes without what it never reads, indexed by nodecycle's cordon.
func ClusterCacheOptions() clustercache.CacheOptions {
	return clustercache.CacheOptions{
		DefaultTransform: toolscache.TransformFunc(StripNode),
		Indexes: []clustercache.CacheOptionsIndex{{
			Object: &corev1.Node{}, Field: indexCordonedBy, ExtractValue: cordonedByNodecycle,
		}},
	}
}

// ClusterMachines enqueues the Machines of a Cluster (on connect and
// disconnect of its workload cluster).
func ClusterMachines(c client.Reader) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		return machineRequests(ctx, c, client.InNamespace(o.GetNamespace()), client.MatchingLabels{clusterv1.ClusterNameLabel: o.GetName()})
	}
}

// ClusterCycles enqueues the open NodeCycles of a Cluster (on connect and
// disconnect of its workload cluster, when its Node watch is to be set up
// again).
func ClusterCycles(c client.Reader) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.NodeCycleList
		if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			if nc := &list.Items[i]; nc.Spec.ClusterName == o.GetName() && !nc.Status.Phase.Terminal() {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)})
			}
		}
		return reqs
	}
}

// ShutdownWithManager stops the ClusterCache's per-cluster caches when the
// manager stops; they outlive the manager's context otherwise.
func ShutdownWithManager(mgr manager.Manager, cc clustercache.ClusterCache) error {
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		if s, ok := cc.(interface{ Shutdown() }); ok {
			s.Shutdown()
		}
		return nil
	}))
}
