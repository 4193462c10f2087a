package nodecycle

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// +kubebuilder:rbac:groups=nodecycle.io,resources=nodecycles,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=nodecycle.io,resources=nodecycles/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=nodes/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups=lifecycle.k8s.io,resources=evictionrequests,verbs=get;list;create;patch;delete
// +kubebuilder:rbac:groups=lifecycle.k8s.io,resources=evictions,verbs=list
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch;update
// +kubebuilder:rbac:groups=nodecycle.io,resources=nodecyclepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodecycle.io,resources=nodecyclepolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=nodecycle-system,resources=secrets,verbs=get;create
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=nodecycle-system,resources=leases,verbs=get;list;watch;create;update;patch

// SetupWithManager registers the Reconciler. The Clusters add the watches
// of the nodes' clusters: the manager's own Nodes in the local mode;
// workload clusters' Nodes are watched once a NodeCycle of the cluster is
// reconciled.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("nodecycle").
		For(&v1alpha1.NodeCycle{}).
		// A NodeCycle that leaves its slot lets the waiting ones of its cluster go.
		Watches(&v1alpha1.NodeCycle{}, handler.EnqueueRequestsFromMapFunc(r.waitingInCluster), builder.WithPredicates(slotFreed)).
		// A policy whose gates change (a freeze lifted, a pause removed)
		// lets its waiting NodeCycles look again at once.
		Watches(&v1alpha1.NodeCyclePolicy{}, handler.EnqueueRequestsFromMapFunc(r.waitingOfPolicy), builder.WithPredicates(gatesChanged)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4})
	b = r.Clusters.Watch(b, r.nodeEvents, r.openInCluster)
	if r.podWatch != nil {
		b = b.WatchesRawSource(source.Channel(r.podWatch.events, &handler.EnqueueRequestForObject{}))
		// The watches outlive no manager.
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			<-ctx.Done()
			r.podWatch.stopAll()
			return nil
		})); err != nil {
			return err
		}
	}
	c, err := b.Build(r)
	r.controller = c
	return err
}

// nodeEvents handles the Node events of one cluster: the node's changes
// (Ready, boot ID, cordon) move its open NodeCycle on, and a cordon of
// nodecycle's that is lifted lets the cluster's waiting NodeCycles go (the
// NodeCycle that ended may have been seen before the Node's uncordon
// reached the cache). namespace "" is the local mode's.
func (r *Reconciler) nodeEvents(namespace, cluster string) handler.EventHandler {
	if namespace == "" {
		namespace = r.Config.Namespace
	}
	toCycles := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return r.openOfNode(ctx, namespace, cluster, o.GetName())
	})
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			toCycles.Create(ctx, e, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if nodes.ChangeMatters.Update(e) {
				toCycles.Update(ctx, e, q)
			}
			r.onCordonLifted(ctx, e, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			toCycles.Delete(ctx, e, q)
		},
	}
}

// slotFreed passes NodeCycles that just became terminal or were deleted.
var slotFreed = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*v1alpha1.NodeCycle), e.ObjectNew.(*v1alpha1.NodeCycle)
		return !o.Status.Phase.Terminal() && n.Status.Phase.Terminal()
	},
	DeleteFunc:  func(event.DeleteEvent) bool { return true },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// openOfNode enqueues the node's NodeCycle that is not finished.
func (r *Reconciler) openOfNode(ctx context.Context, namespace, cluster, node string) []reconcile.Request {
	history, err := cycles.OfNode(ctx, r.Client, namespace, cluster, node)
	if err != nil {
		return nil
	}
	if open := cycles.Open(history); open != nil {
		return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(open)}}
	}
	return nil
}

// openInCluster enqueues the open NodeCycles of a Cluster (on connect and
// disconnect of its workload cluster, when its Node watch is to be set up
// again, and when it is unpaused or deleted).
func (r *Reconciler) openInCluster(ctx context.Context, o client.Object) []reconcile.Request {
	return r.inCluster(ctx, o.GetNamespace(), o.GetName(), func(p v1alpha1.Phase) bool { return !p.Terminal() })
}

// waitingInCluster enqueues the waiting NodeCycles of the cluster of a
// NodeCycle that left its slot.
func (r *Reconciler) waitingInCluster(ctx context.Context, o client.Object) []reconcile.Request {
	freed := o.(*v1alpha1.NodeCycle)
	return r.inCluster(ctx, freed.Namespace, freed.Spec.ClusterName, waiting)
}

// gatesChanged passes policies whose freezes or pause changed (the gates
// a NodeCycle reads from its policy as it is now).
var gatesChanged = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*v1alpha1.NodeCyclePolicy), e.ObjectNew.(*v1alpha1.NodeCyclePolicy)
		_, op := o.Annotations[v1alpha1.AnnotationPaused]
		_, np := n.Annotations[v1alpha1.AnnotationPaused]
		return op != np || !equality.Semantic.DeepEqual(o.Spec.Freezes, n.Spec.Freezes)
	},
	DeleteFunc:  func(event.DeleteEvent) bool { return true },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// waitingOfPolicy enqueues the waiting NodeCycles of a policy.
func (r *Reconciler) waitingOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.NodeCycleList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if nc := &list.Items[i]; nc.Spec.Policy == o.GetName() && waiting(nc.Status.Phase) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)})
		}
	}
	return reqs
}

func waiting(p v1alpha1.Phase) bool { return p == "" || p == v1alpha1.PhasePending }

func (r *Reconciler) inCluster(ctx context.Context, namespace, cluster string, want func(v1alpha1.Phase) bool) []reconcile.Request {
	list, err := cycles.InCluster(ctx, r.Client, namespace, cluster)
	if err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list {
		if want(list[i].Status.Phase) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list[i])})
		}
	}
	return reqs
}

// onCordonLifted enqueues the waiting NodeCycles of the namespace whose
// cordon was just lifted from a node (the owner is known by name only, so
// all of the namespace's clusters).
func (r *Reconciler) onCordonLifted(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	owner, had := e.ObjectOld.GetAnnotations()[v1alpha1.AnnotationCordonedBy]
	if _, still := e.ObjectNew.GetAnnotations()[v1alpha1.AnnotationCordonedBy]; !had || still {
		return
	}
	ns, _, _ := strings.Cut(owner, "/")
	var list v1alpha1.NodeCycleList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return
	}
	for i := range list.Items {
		if waiting(list.Items[i].Status.Phase) {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
}
