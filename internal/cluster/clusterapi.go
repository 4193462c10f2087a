package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// ClusterAPI reaches the workload clusters of Cluster API Clusters through
// Connections (the <cluster>-kubeconfig Secret). A
// NodeCycle's cluster is the Cluster of that name in its namespace, and its
// node's Machine is spec.machineName there.
type ClusterAPI struct {
	// mgmt reads and writes the management cluster (Clusters, Machines).
	mgmt  client.Client
	conns *Connections
	// recorder records Events in the management cluster; workload
	// clusters get theirs from recorders.
	recorder  events.EventRecorder
	recorders *recorders
	// watched holds the clusters whose Nodes a watch was asked for.
	watched *sync.Map
}

var _ Clusters = ClusterAPI{}

// NewClusterAPI returns the Clusters of conns; mgmt reaches the
// management cluster, and rec records Events there.
func NewClusterAPI(mgmt client.Client, conns *Connections, rec events.EventRecorder) ClusterAPI {
	return ClusterAPI{mgmt: mgmt, conns: conns, recorder: rec, recorders: &recorders{}, watched: &sync.Map{}}
}

// StopWithManager stops the workload clusters' Event recorders when the
// manager stops.
func (c ClusterAPI) StopWithManager(mgr manager.Manager) error {
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		c.recorders.stop()
		return nil
	}))
}

// Unreachable says whether a cluster that cannot be reached now has had
// its chance: a connection was tried and failed, or its health probes
// fail. A cluster the manager has not tried to connect to yet (just after
// it started) is not reported.
func (c ClusterAPI) Unreachable(_ context.Context, namespace, cluster string, err error) bool {
	if !errors.Is(err, ErrNotConnected) {
		return true
	}
	return c.conns.Failing(client.ObjectKey{Namespace: namespace, Name: cluster})
}

// EventsFor records Events about the node of Machine m, on m and on the
// workload Node.
func (c ClusterAPI) EventsFor(ctx context.Context, m *clusterv1.Machine) MachineEvents {
	e := MachineEvents{Regarding: m, Management: c.recorder}
	key := client.ObjectKey{Namespace: m.Namespace, Name: m.Spec.ClusterName}
	if cfg, err := c.conns.Config(key); err == nil {
		e.Workload = c.recorders.lazy(key, cfg)
	}
	return e
}

// Workload returns the access to one workload cluster.
func (c ClusterAPI) Workload(ctx context.Context, namespace, cluster string) (Workload, error) {
	if cluster == "" {
		return Workload{}, errors.New("the NodeCycle names no cluster; in Cluster API mode every NodeCycle belongs to a Cluster")
	}
	key := client.ObjectKey{Namespace: namespace, Name: cluster}
	cached, live, cfg, err := c.conns.Clients(key)
	if errors.Is(err, ErrNotConnected) {
		if askErr := c.askToConnect(ctx, key); askErr != nil {
			return Workload{}, askErr
		}
	}
	if err != nil {
		return Workload{}, err
	}
	return Workload{Client: cached, Reader: live, Config: cfg, AgentNamespace: WorkloadAgentNamespace}, nil
}

// askToConnect puts nodecycle.io/connect on the Cluster, which lets
// Connections connect to it (ConnectFilter); its connect event wakes who
// asked.
func (c ClusterAPI) askToConnect(ctx context.Context, key client.ObjectKey) error {
	cl := &clusterv1.Cluster{}
	if err := c.mgmt.Get(ctx, key, cl); err != nil {
		return client.IgnoreNotFound(err)
	}
	if ConnectFilter(cl) {
		return nil // asked already: connecting, or it cannot be reached
	}
	patch := client.MergeFrom(cl.DeepCopy())
	if cl.Annotations == nil {
		cl.Annotations = map[string]string{}
	}
	cl.Annotations[v1alpha1.AnnotationConnect] = "true"
	if err := c.mgmt.Patch(ctx, cl, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("asking to connect to cluster %s: %w", key, err)
	}
	return nil
}

// ConnectFilter says which Clusters Connections connects to: only those
// nodecycle asked for (nodecycle.io/connect).
func ConnectFilter(cl *clusterv1.Cluster) bool {
	_, ok := cl.Annotations[v1alpha1.AnnotationConnect]
	return ok
}

// Target implements Clusters.
func (c ClusterAPI) Target(ctx context.Context, nc *v1alpha1.NodeCycle) (Target, error) {
	w, err := c.Workload(ctx, nc.Namespace, nc.Spec.ClusterName)
	if err != nil {
		return nil, err
	}
	t := machineTarget{w: w, mgmt: c.mgmt, namespace: nc.Namespace, cluster: nc.Spec.ClusterName, machine: nc.Spec.MachineName}
	m := &clusterv1.Machine{}
	switch err := c.mgmt.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: nc.Spec.MachineName}, m); {
	case err == nil:
		t.MachineEvents = c.EventsFor(ctx, m)
	case apierrors.IsNotFound(err):
		// Replaced: there is no Machine left to describe.
		t.MachineEvents = c.EventsFor(ctx, &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: nc.Namespace}, Spec: clusterv1.MachineSpec{ClusterName: nc.Spec.ClusterName}})
		t.Regarding = nil
	default:
		return nil, err
	}
	return t, nil
}

// Gone implements Clusters.
func (c ClusterAPI) Gone(ctx context.Context, nc *v1alpha1.NodeCycle) (bool, error) {
	if nc.Spec.ClusterName == "" {
		return false, nil
	}
	err := c.mgmt.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: nc.Spec.ClusterName}, &clusterv1.Cluster{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// MachineGone implements Clusters.
func (c ClusterAPI) MachineGone(ctx context.Context, nc *v1alpha1.NodeCycle) (bool, error) {
	if nc.Spec.MachineName == "" {
		return false, ErrNoMachine
	}
	err := c.mgmt.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: nc.Spec.MachineName}, &clusterv1.Machine{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// Watch implements Clusters: a workload cluster that connects or
// disconnects, and a Cluster that is unpaused or deleted, wake its
// NodeCycles. Nodes are watched per cluster through WatchNodes.
func (c ClusterAPI) Watch(b *builder.Builder, _ func(namespace, cluster string) handler.EventHandler, clusterCycles handler.MapFunc) *builder.Builder {
	return b.WatchesRawSource(c.conns.Source(clusterCycles)).
		Watches(&clusterv1.Cluster{}, handler.EnqueueRequestsFromMapFunc(clusterCycles), builder.WithPredicates(PausedOrDeleted))
}

// WatchNodes implements Clusters.
func (c ClusterAPI) WatchNodes(_ context.Context, namespace, cluster, name string, ctrl controller.Controller, h handler.EventHandler) error {
	key := client.ObjectKey{Namespace: namespace, Name: cluster}
	c.watched.Store(key, true)
	return c.conns.Watch(key, name, &corev1.Node{}, ctrl, h)
}

// Nodes implements Clusters: the cached Nodes of the connected clusters
// whose Nodes nodecycle watches (listing another would start a watch).
func (c ClusterAPI) Nodes(ctx context.Context) (map[string][]corev1.Node, error) {
	out := map[string][]corev1.Node{}
	var errs []error
	c.watched.Range(func(k, _ any) bool {
		key := k.(client.ObjectKey)
		cl, _, _, err := c.conns.Clients(key)
		if err != nil {
			return true // not connected now: no value rather than a stale one
		}
		var list corev1.NodeList
		if err := cl.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
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

// ConnectionDefaults are the per-cluster settings nodecycle needs: Nodes
// without what it never reads, indexed by nodecycle's cordon; Pods,
// Secrets and ConfigMaps always read live (never cached).
func ConnectionDefaults(opts ConnectionOptions) ConnectionOptions {
	opts.Transform = nodes.Strip
	opts.Indexes = []Index{{Object: &corev1.Node{}, Field: nodes.IndexCordonedBy, Extract: nodes.CordonedByNodecycle}}
	opts.Uncached = []client.Object{&corev1.Pod{}, &corev1.Secret{}, &corev1.ConfigMap{}}
	return opts
}

// StripMachine is the management cache's transform of Machines: it drops
// what nodecycle never reads (managedFields, and of the status all but the
// node reference, phase, initialization, deletion and the Updating
// condition). A fleet holds tens of thousands of Machines.
func StripMachine(obj any) (any, error) {
	m, ok := obj.(*clusterv1.Machine)
	if !ok {
		return obj, nil
	}
	m.ManagedFields = nil
	m.Status = clusterv1.MachineStatus{
		NodeRef: m.Status.NodeRef, Phase: m.Status.Phase, Initialization: m.Status.Initialization, Deletion: m.Status.Deletion,
		Conditions: slices.DeleteFunc(m.Status.Conditions, func(c metav1.Condition) bool { return c.Type != clusterv1.MachineUpdatingCondition }),
	}
	return m, nil
}

// PausedOrDeleted passes Clusters whose spec.paused changed, and deleted ones.
var PausedOrDeleted = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*clusterv1.Cluster), e.ObjectNew.(*clusterv1.Cluster)
		return ptr.Deref(o.Spec.Paused, false) != ptr.Deref(n.Spec.Paused, false)
	},
	DeleteFunc:  func(event.DeleteEvent) bool { return true },
	GenericFunc: func(event.GenericEvent) bool { return false },
}
