package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// +kubebuilder:rbac:groups=nodecycle.io,resources=nodecycles,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=nodecycle.io,resources=nodecycles/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=nodes/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch;update
// +kubebuilder:rbac:groups=nodecycle.io,resources=nodecyclepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodecycle.io,resources=nodecyclepolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=nodecycle-system,resources=secrets,verbs=get
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch

// SetupIndexes adds the cache indexes the reconcilers read through.
func SetupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.NodeCycle{}, indexNodeName, func(o client.Object) []string {
		return []string{o.(*v1alpha1.NodeCycle).Spec.NodeName}
	}); err != nil {
		return fmt.Errorf("indexing NodeCycles by node: %w", err)
	}
	if err := idx.IndexField(ctx, &corev1.Node{}, indexCordonedBy, cordonedByNodecycle); err != nil {
		return fmt.Errorf("indexing nodes cordoned by nodecycle: %w", err)
	}
	return nil
}

func cordonedByNodecycle(o client.Object) []string {
	if _, ok := o.GetAnnotations()[v1alpha1.AnnotationCordonedBy]; ok {
		return []string{indexYes}
	}
	return nil
}

// StripNode is a cache transform that drops what the manager never reads
// from a Node (managed fields, the image list), which is most of its size.
func StripNode(obj any) (any, error) {
	if n, ok := obj.(*corev1.Node); ok {
		n.ManagedFields = nil
		n.Status.Images = nil
	}
	return obj, nil
}

// nodeChangeMatters passes Node updates that can change a decision: not the
// kubelet's heartbeats.
var nodeChangeMatters = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
		if o == nil || n == nil {
			return true
		}
		return o.Spec.Unschedulable != n.Spec.Unschedulable ||
			bootID(o) != bootID(n) ||
			!equality.Semantic.DeepEqual(o.Labels, n.Labels) ||
			!equality.Semantic.DeepEqual(o.Annotations, n.Annotations) ||
			conditionChanged(o, n, corev1.NodeReady, false) ||
			conditionChanged(o, n, v1alpha1.ConditionRebootRequired, true)
	},
}

// conditionChanged compares a condition's status and, with writes, whether
// it was written again (the agent's first write after a reboot matters).
func conditionChanged(o, n *corev1.Node, t corev1.NodeConditionType, writes bool) bool {
	a, b := nodes.Condition(o, t), nodes.Condition(n, t)
	if a == nil || b == nil {
		return (a == nil) != (b == nil)
	}
	return a.Status != b.Status || (writes && !a.LastHeartbeatTime.Equal(&b.LastHeartbeatTime))
}

// SetupWithManager registers the NodeReconciler.
func (r *NodeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("node").
		For(&corev1.Node{}, builder.WithPredicates(nodeChangeMatters)).
		// A NodeCycle that ends may leave work for the node: a retry, a cordon to lift.
		Watches(&v1alpha1.NodeCycle{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.(*v1alpha1.NodeCycle).Spec.NodeName}}}
		}), builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == r.Config.Namespace
		}))).
		// A policy that changes may now apply to nodes waiting for a reboot.
		Watches(&v1alpha1.NodeCyclePolicy{}, handler.EnqueueRequestsFromMapFunc(r.nodesNeedingReboot)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(r)
}

// SetupWithManager registers the NodeCycleReconciler. In the local mode it
// watches the manager's own Nodes; workload clusters' Nodes are watched
// through Clusters once a NodeCycle of the cluster is reconciled.
func (r *NodeCycleReconciler) SetupWithManager(mgr ctrl.Manager, extra ...func(*builder.Builder) *builder.Builder) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("nodecycle").
		For(&v1alpha1.NodeCycle{}).
		// A NodeCycle that leaves its slot lets the waiting ones of its cluster go.
		Watches(&v1alpha1.NodeCycle{}, handler.EnqueueRequestsFromMapFunc(r.waitingInCluster), builder.WithPredicates(slotFreed)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4})
	if _, local := r.Clusters.(LocalCluster); local {
		b = b.Watches(&corev1.Node{}, r.nodeEvents("", ""))
	}
	for _, f := range extra {
		b = f(b)
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
func (r *NodeCycleReconciler) nodeEvents(namespace, cluster string) handler.EventHandler {
	if namespace == "" {
		namespace = r.Config.Namespace
	}
	toCycles := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return r.cyclesOfNode(ctx, namespace, cluster, o.GetName())
	})
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			toCycles.Create(ctx, e, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if nodeChangeMatters.Update(e) {
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

func (r *NodeCycleReconciler) cyclesOfNode(ctx context.Context, namespace, cluster, node string) []reconcile.Request {
	cycles, err := cyclesOfNode(ctx, r.Client, namespace, cluster, node)
	if err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, nc := range cycles {
		if !nc.Status.Phase.Terminal() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&nc)})
		}
	}
	return reqs
}

func (r *NodeCycleReconciler) waitingInCluster(ctx context.Context, o client.Object) []reconcile.Request {
	freed := o.(*v1alpha1.NodeCycle)
	var list v1alpha1.NodeCycleList
	if err := r.Client.List(ctx, &list, client.InNamespace(freed.Namespace)); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, nc := range list.Items {
		if (freed.Spec.NodeName == "" || nc.Spec.ClusterName == freed.Spec.ClusterName) && (nc.Status.Phase == "" || nc.Status.Phase == v1alpha1.PhasePending) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&nc)})
		}
	}
	return reqs
}

func (r *NodeReconciler) nodesNeedingReboot(ctx context.Context, _ client.Object) []reconcile.Request {
	var list corev1.NodeList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if nodes.IsConditionTrue(&list.Items[i], v1alpha1.ConditionRebootRequired) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
		}
	}
	return reqs
}

// onCordonLifted enqueues the waiting NodeCycles of the namespace whose
// cordon was just lifted from a node (the owner is known by name only, so
// all of the namespace's clusters).
func (r *NodeCycleReconciler) onCordonLifted(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	owner, had := e.ObjectOld.GetAnnotations()[v1alpha1.AnnotationCordonedBy]
	if _, still := e.ObjectNew.GetAnnotations()[v1alpha1.AnnotationCordonedBy]; !had || still {
		return
	}
	ns, name, _ := strings.Cut(owner, "/")
	for _, req := range r.waitingInCluster(ctx, &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}) {
		q.Add(req)
	}
}
