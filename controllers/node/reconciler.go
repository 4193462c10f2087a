package node

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// Reconciler opens a NodeCycle for every eligible node of the cluster the
// manager runs in whose RebootRequired condition is True.
type Reconciler struct {
	cycles.Opener
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, req.NamespacedName, node); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	sc := cycles.Scope{Namespace: r.Config.Namespace, W: cluster.Workload{Client: r.Client, Reader: r.APIReader}, Events: cluster.NodeEvents{Recorder: r.Recorder}}
	history, wanted, err := r.Settle(ctx, sc, node)
	if err != nil || !wanted {
		return reconcile.Result{}, err
	}
	policy, err := r.PolicyFor(ctx, sc.Namespace, node)
	if err != nil {
		// Bad or ambiguous policies: nothing is done to the node.
		r.Recorder.Eventf(node, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonPolicyError), "Select", "Reboot required, but nothing is done: %v", err)
		return reconcile.Result{}, nil
	}
	spec := r.Config.CycleSpec(node.Name, policy)
	// A control-plane node is cycled alone, as in Cluster API mode: two
	// etcd members down at once can cost quorum, whatever --max-concurrent
	// says.
	_, spec.ControlPlane = node.Labels[nodes.LabelControlPlane]
	return r.OpenCycle(ctx, sc, node, history, spec)
}

// SetupWithManager registers the Reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("node").
		For(&corev1.Node{}, builder.WithPredicates(nodes.ChangeMatters)).
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

func (r *Reconciler) nodesNeedingReboot(ctx context.Context, _ client.Object) []reconcile.Request {
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

// Resolve fills in an on-demand request for a node of this cluster: the
// spec an automatic NodeCycle of the node would get, with the requested
// strategy; a request for a node that does not exist, is excluded or not
// selected, or for a strategy the node's policy does not allow, is refused.
func (r *Reconciler) Resolve(ctx context.Context, nc *v1alpha1.NodeCycle) (v1alpha1.NodeCycleSpec, error) {
	if nc.Spec.ClusterName != "" {
		return nc.Spec, cycles.Refusef("cluster %q: this manager handles only the cluster it runs in (Cluster API mode is off)", nc.Spec.ClusterName)
	}
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: nc.Spec.NodeName}, node); err != nil {
		if apierrors.IsNotFound(err) {
			return nc.Spec, cycles.Refusef("node %s does not exist", nc.Spec.NodeName)
		}
		return nc.Spec, err
	}
	if ok, _, why := r.Config.Eligibility(node); !ok {
		return nc.Spec, cycles.Refusef("%s", why)
	}
	policy, err := r.PolicyFor(ctx, r.Config.Namespace, node)
	if err != nil {
		return nc.Spec, cycles.Refusef("%v", err)
	}
	spec := r.Config.CycleSpec(node.Name, policy)
	_, spec.ControlPlane = node.Labels[nodes.LabelControlPlane]
	return cycles.ResolveRequest(nc, node, spec)
}
