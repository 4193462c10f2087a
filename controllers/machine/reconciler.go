package machine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/annotations"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// Reconciler is the Cluster API mode's node reconciler: for every
// Machine whose workload Node requires a reboot, it opens a NodeCycle in the
// Machine's namespace with the ladder its MachineDeployment (or control
// plane) asks for in nodecycle.io/strategy. It also lifts a skip-remediation
// annotation nodecycle left on a Machine no NodeCycle works on.
type Reconciler struct {
	cycles.Opener
	Clusters cluster.ClusterAPI
	// ClusterSource tells of workload clusters that connect or disconnect
	// (the connections'); nil in tests that need no reconnects.
	ClusterSource source.Source

	controller controller.Controller
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	m := &clusterv1.Machine{}
	if err := r.Client.Get(ctx, req.NamespacedName, m); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if err := r.releaseRemediation(ctx, m); err != nil {
		return reconcile.Result{}, err
	}
	if m.Spec.ClusterName == "" || !m.Status.NodeRef.IsDefined() || !m.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	cluster := &clusterv1.Cluster{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Spec.ClusterName}, cluster); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if annotations.IsPaused(cluster, m) {
		return reconcile.Result{}, nil // nothing new starts while Cluster API is paused (clusterctl move pauses)
	}
	owner, ladder, ladderErr := r.ladderFor(ctx, m)
	if ladder == nil && ladderErr == nil {
		// Not opted in: its workload cluster is reached only when nodecycle
		// has a past with the node (a NodeCycle to withdraw, leftovers to
		// clean up). The manager's memory grows with the clusters that
		// opted in, not with all of them.
		history, err := cycles.OfNode(ctx, r.Client, m.Namespace, m.Spec.ClusterName, m.Status.NodeRef.Name)
		if err != nil || len(history) == 0 {
			return reconcile.Result{}, err
		}
	}
	w, err := r.Clusters.Workload(ctx, m.Namespace, m.Spec.ClusterName)
	if err == nil {
		err = r.Clusters.WatchNodes(ctx, m.Namespace, m.Spec.ClusterName, "nodecycle-machine-nodes", r.controller, r.nodeToMachine(m.Namespace, m.Spec.ClusterName))
	}
	if err != nil {
		// Reported on the Cluster once the connection had its chance (not
		// while the manager is still connecting after its start); the
		// connection's connect event enqueues the Machines again.
		if !r.Clusters.Unreachable(ctx, m.Namespace, m.Spec.ClusterName, err) {
			return reconcile.Result{RequeueAfter: connectingPollInterval}, nil
		}
		r.Recorder.Eventf(cluster, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonClusterUnreachable), "Connect",
			"nodecycle cannot reach the workload cluster: %v", err)
		return reconcile.Result{RequeueAfter: unreachablePollInterval}, nil
	}
	node := &corev1.Node{}
	if err = w.Client.Get(ctx, types.NamespacedName{Name: m.Status.NodeRef.Name}, node); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	sc := cycles.Scope{Namespace: m.Namespace, Cluster: m.Spec.ClusterName, W: w, Events: r.Clusters.EventsFor(ctx, m)}
	if ladder == nil {
		if err = r.withdraw(ctx, sc, node); err != nil {
			return reconcile.Result{}, err
		}
	}
	history, wanted, err := r.Settle(ctx, sc, node)
	if err != nil || !wanted {
		return reconcile.Result{}, err
	}
	if ladderErr != nil {
		r.Recorder.Eventf(owner, m, corev1.EventTypeWarning, string(v1alpha1.ReasonInvalidStrategy), "Select", "Reboot required on node %s (Machine %s), but nothing is done: %v", node.Name, m.Name, ladderErr)
		if err = nodes.SetMaintenanceCondition(ctx, w.Client, node, corev1.ConditionFalse, v1alpha1.ReasonInvalidStrategy, ladderErr.Error(), r.Clock.Now()); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, nil
	}
	if ladder == nil {
		return reconcile.Result{}, nil // not opted in: hands off
	}
	policy, err := r.PolicyFor(ctx, m.Namespace, node)
	if err != nil {
		r.Recorder.Eventf(m, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonPolicyError), "Select", "Reboot required on node %s, but nothing is done: %v", node.Name, err)
		return reconcile.Result{}, nil
	}
	spec := r.Config.CycleSpec(node.Name, policy)
	spec.Strategies = ladder
	spec.MachineName = m.Name
	spec.ControlPlane = isControlPlane(m)
	return r.OpenCycle(ctx, sc, node, history, spec)
}

func isControlPlane(m *clusterv1.Machine) bool {
	_, ok := m.Labels[clusterv1.MachineControlPlaneLabel]
	return ok
}

// Ladder is the strategies Machine m is opted in to: its
// MachineDeployment's or control plane's nodecycle.io/strategy (nil when
// it is not opted in).
func (r *Reconciler) Ladder(ctx context.Context, m *clusterv1.Machine) ([]v1alpha1.Strategy, error) {
	_, ladder, err := r.ladderFor(ctx, m)
	return ladder, err
}

// ladderFor reads nodecycle.io/strategy from the object that opts the
// Machine in: its MachineDeployment, or for a control-plane Machine the
// control-plane object that owns it. A nil ladder without error means the
// Machine is not opted in. owner is where a problem is reported.
func (r *Reconciler) ladderFor(ctx context.Context, m *clusterv1.Machine) (client.Object, []v1alpha1.Strategy, error) {
	var owner client.Object
	switch {
	case isControlPlane(m):
		ref := metav1.GetControllerOf(m)
		if ref == nil {
			return m, nil, nil
		}
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return m, nil, nil
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gv.WithKind(ref.Kind))
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: ref.Name}, u); err != nil {
			return m, nil, client.IgnoreNotFound(err)
		}
		owner = u
	case m.Labels[clusterv1.MachineDeploymentNameLabel] != "":
		md := &clusterv1.MachineDeployment{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Labels[clusterv1.MachineDeploymentNameLabel]}, md); err != nil {
			return m, nil, client.IgnoreNotFound(err)
		}
		owner = md
	default:
		return m, nil, nil // a Machine of no MachineDeployment: hands off
	}
	value, ok := owner.GetAnnotations()[v1alpha1.AnnotationStrategy]
	if !ok {
		return owner, nil, nil
	}
	ladder, err := v1alpha1.ParseStrategies(value)
	if err != nil {
		return owner, nil, err
	}
	if isControlPlane(m) && slices.Contains(ladder, v1alpha1.StrategyReplace) {
		return owner, nil, fmt.Errorf("%s=%q: replace is refused for control-plane Machines; deleting one behind its control plane's back can cost etcd quorum. Roll the control plane with its own mechanism (for a KubeadmControlPlane: spec.rollout.after), or use reboot or power-cycle", v1alpha1.AnnotationStrategy, value)
	}
	return owner, ladder, nil
}

// releaseRemediation lifts the skip-remediation nodecycle set on the Machine
// once no NodeCycle works on it (after a crash, or a NodeCycle deleted
// mid-operation). A skip-remediation set by someone else is left alone.
func (r *Reconciler) releaseRemediation(ctx context.Context, m *clusterv1.Machine) error {
	owner, ok := m.Annotations[v1alpha1.AnnotationSkipRemediationBy]
	if !ok {
		if owner, ok = m.Annotations[v1alpha1.AnnotationBlockMoveBy]; !ok {
			return nil
		}
	}
	if key, err := objectKeyOf(owner); err == nil {
		nc := &v1alpha1.NodeCycle{}
		switch err := r.Client.Get(ctx, key, nc); {
		case err == nil && !nc.Status.Phase.Terminal():
			return nil // still at work
		case err == nil && nc.Status.CompletionTime != nil && r.Clock.Now().Sub(nc.Status.CompletionTime.Time) < cycles.RemediationResumeDelay:
			return nil // its NodeCycle lifts it, a moment after its end
		case err != nil && !apierrors.IsNotFound(err):
			return err
		}
	}
	// Its NodeCycle finished or is gone (or the marker is malformed): lift it.
	if err := cluster.ReleaseRemediation(ctx, r.Client, m, owner); err != nil {
		return err
	}
	logf.FromContext(ctx).Info("Lifted a skip-remediation left by nodecycle", "NodeCycle", owner)
	return nil
}

// Resolve fills in an on-demand request for a node of a workload
// cluster: the spec an automatic NodeCycle of its Machine would get, with
// the requested strategy. A request for a cluster, node or Machine that
// does not exist, a Machine that is not opted in, an excluded node, or a
// strategy its ladder does not name, is refused.
func (r *Reconciler) Resolve(ctx context.Context, nc *v1alpha1.NodeCycle) (v1alpha1.NodeCycleSpec, error) {
	name := nc.Spec.ClusterName
	if name == "" {
		return nc.Spec, cycles.Refusef("spec.clusterName is required: this manager runs in Cluster API mode and handles the nodes of workload clusters")
	}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: name}, &clusterv1.Cluster{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nc.Spec, cycles.Refusef("Cluster %s/%s does not exist", nc.Namespace, name)
		}
		return nc.Spec, err
	}
	w, err := r.Clusters.Workload(ctx, nc.Namespace, name)
	if err != nil {
		return nc.Spec, err // retried: the connection may come
	}
	node := &corev1.Node{}
	if err = w.Client.Get(ctx, types.NamespacedName{Name: nc.Spec.NodeName}, node); err != nil {
		if apierrors.IsNotFound(err) {
			return nc.Spec, cycles.Refusef("node %s does not exist in cluster %s", nc.Spec.NodeName, name)
		}
		return nc.Spec, err
	}
	var machines clusterv1.MachineList
	if err = r.Client.List(ctx, &machines, client.InNamespace(nc.Namespace), client.MatchingLabels{clusterv1.ClusterNameLabel: name}); err != nil {
		return nc.Spec, err
	}
	var m *clusterv1.Machine
	for i := range machines.Items {
		if machines.Items[i].Status.NodeRef.Name == node.Name {
			m = &machines.Items[i]
		}
	}
	if m == nil {
		return nc.Spec, cycles.Refusef("node %s has no Machine in cluster %s", node.Name, name)
	}
	_, ladder, err := r.ladderFor(ctx, m)
	switch {
	case err != nil:
		return nc.Spec, cycles.Refusef("Machine %s: %v", m.Name, err)
	case ladder == nil:
		return nc.Spec, cycles.Refusef("Machine %s is not opted in: neither its MachineDeployment nor its control plane has the annotation %s", m.Name, v1alpha1.AnnotationStrategy)
	}
	if ok, _, why := r.Config.Eligibility(node); !ok {
		return nc.Spec, cycles.Refusef("%s", why)
	}
	policy, err := r.PolicyFor(ctx, nc.Namespace, node)
	if err != nil {
		return nc.Spec, cycles.Refusef("%v", err)
	}
	spec := r.Config.CycleSpec(node.Name, policy)
	spec.Strategies = ladder
	spec.MachineName = m.Name
	spec.ControlPlane = isControlPlane(m)
	return cycles.ResolveRequest(nc, node, spec)
}

// withdraw deletes the node's NodeCycle that has not started yet once the
// Machine is no longer opted in (annotation removed or made invalid):
// nothing was done to the node, so there is nothing to undo.
func (r *Reconciler) withdraw(ctx context.Context, sc cycles.Scope, node *corev1.Node) error {
	history, err := cycles.OfNode(ctx, r.Client, sc.Namespace, sc.Cluster, node.Name)
	if err != nil {
		return err
	}
	open := cycles.Open(history)
	if open == nil || open.Status.Phase.Active() || open.Spec.Request != nil || open.Spec.Remediation != "" {
		// An operation under way finishes; a person's request, or a
		// MachineHealthCheck's remediation, needs no opt-in.
		return nil
	}
	if err := r.Client.Delete(ctx, open, client.Preconditions{UID: &open.UID, ResourceVersion: &open.ResourceVersion}); client.IgnoreNotFound(err) != nil {
		if apierrors.IsConflict(err) {
			return nil // it moved on meanwhile; the next reconcile looks again
		}
		return fmt.Errorf("withdrawing NodeCycle %s: %w", open.Name, err)
	}
	sc.Events.Eventf(node, open, corev1.EventTypeNormal, v1alpha1.ReasonWithdrawn, "Select",
		"Machine is no longer opted in (%s); NodeCycle %s had not started and was deleted", v1alpha1.AnnotationStrategy, open.Name)
	return nil
}

// nodeToMachine maps a workload Node to its Machine through the annotations
// Cluster API puts on the Node.
func (r *Reconciler) nodeToMachine(namespace, cluster string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		a := o.GetAnnotations()
		if a[clusterv1.MachineAnnotation] == "" || a[clusterv1.ClusterNameAnnotation] != cluster || a[clusterv1.ClusterNamespaceAnnotation] != namespace {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: namespace, Name: a[clusterv1.MachineAnnotation]}}}
	})
}

// SetupWithManager registers the Reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("nodecycle-machine").
		For(&clusterv1.Machine{}).
		// An annotation added, changed or removed on a MachineDeployment.
		Watches(&clusterv1.MachineDeployment{}, handler.EnqueueRequestsFromMapFunc(r.machinesOfDeployment), builder.WithPredicates(annotationChanged)).
		// A Cluster that is unpaused may now get NodeCycles (one deleted leaves nothing to do).
		Watches(&clusterv1.Cluster{}, handler.EnqueueRequestsFromMapFunc(ClusterMachines(r.Client)), builder.WithPredicates(cluster.PausedOrDeleted)).
		// A NodeCycle that ends may leave work: a retry, a cordon or a skip-remediation to lift.
		Watches(&v1alpha1.NodeCycle{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			nc := o.(*v1alpha1.NodeCycle)
			if nc.Spec.MachineName == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: nc.Namespace, Name: nc.Spec.MachineName}}}
		})).
		// A policy that changes may now apply to Machines waiting for a reboot.
		Watches(&v1alpha1.NodeCyclePolicy{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return machineRequests(ctx, r.Client, client.InNamespace(o.GetNamespace()))
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4})
	if r.ClusterSource != nil {
		b = b.WatchesRawSource(r.ClusterSource)
	}
	c, err := b.Build(r)
	r.controller = c
	return err
}

var annotationChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetAnnotations()[v1alpha1.AnnotationStrategy] != e.ObjectNew.GetAnnotations()[v1alpha1.AnnotationStrategy]
	},
}

func (r *Reconciler) machinesOfDeployment(ctx context.Context, o client.Object) []reconcile.Request {
	return machineRequests(ctx, r.Client, client.InNamespace(o.GetNamespace()), client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: o.GetName()})
}

// machineRequests enqueues the Machines a list with opts returns.
func machineRequests(ctx context.Context, c client.Reader, opts ...client.ListOption) []reconcile.Request {
	var list clusterv1.MachineList
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// objectKeyOf parses "namespace/name".
func objectKeyOf(s string) (client.ObjectKey, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		return client.ObjectKey{}, fmt.Errorf("%q is not namespace/name", s)
	}
	return client.ObjectKey{Namespace: ns, Name: name}, nil
}

// ClusterMachines enqueues the Machines of a Cluster (on connect and
// disconnect of its workload cluster).
func ClusterMachines(c client.Reader) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		return machineRequests(ctx, c, client.InNamespace(o.GetNamespace()), client.MatchingLabels{clusterv1.ClusterNameLabel: o.GetName()})
	}
}

// A Machine of a cluster that cannot be reached is looked at again this
// often (its connection is made again meanwhile); sooner while the first
// connection is still being made.
const (
	unreachablePollInterval = 30 * time.Second
	connectingPollInterval  = 5 * time.Second
)
