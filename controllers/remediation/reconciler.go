// Package remediation is Cluster API's external remediation by nodecycle:
// a MachineHealthCheck whose remediation template is a
// NodeCycleRemediationTemplate creates a NodeCycleRemediation named after
// each unhealthy Machine; this controller opens NodeCycles on the
// Machine's node that climb the remediation's ladder (reboot, power-cycle,
// replace), retries up to its limit, and shows the step in its status. The
// MachineHealthCheck deletes the remediation once the Machine is healthy.
package remediation

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// +kubebuilder:rbac:groups=nodecycle.io,resources=nodecycleremediations,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodecycle.io,resources=nodecycleremediations/status,verbs=get;update;patch

// LabelRemediation is on the NodeCycles of a remediation: its UID (a
// remediation deleted and made again, with the same name, starts afresh).
const LabelRemediation = "nodecycle.io/remediation-uid"

// remediationPriority puts a remediation's NodeCycle first in its
// cluster's queue: a sick node does not wait behind planned reboots.
const remediationPriority = "1000"

// unreachableSkipWait is how long the drain of an unhealthy node waits for
// a pod deleted on it: as Cluster API's drain of an unreachable node, not
// at all beyond a second (its kubelet may never confirm it gone).
const unreachableSkipWait = 1

// Reconciler runs NodeCycleRemediations.
type Reconciler struct {
	cycles.Opener
	Clusters cluster.ClusterAPI
	// ClusterSource tells of workload clusters that connect: a remediation
	// that waited for its cluster goes on at once.
	ClusterSource source.Source
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	rem := &v1alpha1.NodeCycleRemediation{}
	if err := r.Client.Get(ctx, req.NamespacedName, rem); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !rem.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil // a NodeCycle under way finishes on its own
	}
	before := rem.DeepCopy()
	result, err := r.step(ctx, rem)
	if err != nil {
		return reconcile.Result{}, err
	}
	if rem.Status != before.Status {
		if err := r.Client.Status().Patch(ctx, rem, client.MergeFrom(before)); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
	}
	return result, nil
}

// step decides the remediation's next move and writes it into rem.Status.
func (r *Reconciler) step(ctx context.Context, rem *v1alpha1.NodeCycleRemediation) (reconcile.Result, error) {
	st := &rem.Status
	if st.Phase == v1alpha1.RemediationFailed {
		return reconcile.Result{}, nil
	}
	var list v1alpha1.NodeCycleList
	if err := r.Client.List(ctx, &list, client.InNamespace(rem.Namespace), client.MatchingLabels{LabelRemediation: string(rem.UID)}); err != nil {
		return reconcile.Result{}, err
	}
	cycles.SortNewestFirst(list.Items)
	st.Attempts = int32(len(list.Items))
	if len(list.Items) > 0 {
		last := &list.Items[0]
		st.NodeCycle, st.Strategy = last.Name, last.Status.Strategy
		switch last.Status.Phase {
		case v1alpha1.PhaseSucceeded:
			st.Phase = v1alpha1.RemediationSucceeded
			st.Message = "NodeCycle " + last.Name + " succeeded: " + last.Status.Message + "; waiting for the MachineHealthCheck to see the Machine healthy"
			return reconcile.Result{}, nil
		case v1alpha1.PhaseFailed, v1alpha1.PhaseSkipped:
			if st.Attempts >= retryLimit(rem) {
				r.fail(rem, fmt.Sprintf("%d of %d attempts failed; the last, NodeCycle %s: %s", st.Attempts, retryLimit(rem), last.Name, last.Status.Message))
				return reconcile.Result{}, nil
			}
		default:
			st.Phase = v1alpha1.RemediationRunning
			st.Message = fmt.Sprintf("NodeCycle %s (attempt %d of %d), %s: %s", last.Name, st.Attempts, retryLimit(rem), last.Status.Phase, last.Status.Message)
			return reconcile.Result{}, nil
		}
	}
	return r.open(ctx, rem)
}

func retryLimit(rem *v1alpha1.NodeCycleRemediation) int32 { return max(rem.Spec.RetryLimit, 1) }

func (r *Reconciler) fail(rem *v1alpha1.NodeCycleRemediation, why string) {
	rem.Status.Phase, rem.Status.Message = v1alpha1.RemediationFailed, why
	r.Recorder.Eventf(rem, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonRemediationFailed), "Remediate", "%s", why)
}

// open creates the next NodeCycle of the remediation on its Machine's node.
func (r *Reconciler) open(ctx context.Context, rem *v1alpha1.NodeCycleRemediation) (reconcile.Result, error) {
	m := &clusterv1.Machine{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: rem.Namespace, Name: rem.Name}, m); err != nil {
		if apierrors.IsNotFound(err) {
			r.fail(rem, fmt.Sprintf("Machine %s does not exist (a NodeCycleRemediation is named after its Machine)", rem.Name))
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !m.Status.NodeRef.IsDefined() {
		r.fail(rem, fmt.Sprintf("Machine %s has no node: nothing to reboot or power-cycle; its MachineSet replaces it when the MachineHealthCheck deletes it", m.Name))
		return reconcile.Result{}, nil
	}
	w, err := r.Clusters.Workload(ctx, m.Namespace, m.Spec.ClusterName)
	if err != nil {
		// The connection's connect event comes back here (ClusterSource);
		// the poll is for a cluster that stays unreachable.
		rem.Status.Message = fmt.Sprintf("Waiting: cluster %s cannot be reached yet: %v", m.Spec.ClusterName, err)
		return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
	}
	node := &corev1.Node{}
	if err = w.Client.Get(ctx, types.NamespacedName{Name: m.Status.NodeRef.Name}, node); err != nil {
		if apierrors.IsNotFound(err) {
			r.fail(rem, fmt.Sprintf("node %s of Machine %s does not exist", m.Status.NodeRef.Name, m.Name))
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	history, err := cycles.OfNode(ctx, r.Client, m.Namespace, m.Spec.ClusterName, node.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	if open := cycles.Open(history); open != nil && open.Labels[LabelRemediation] != string(rem.UID) {
		// A planned maintenance already works on the node: it ends within
		// its timeouts, then the remediation goes (the NodeCycle's end
		// wakes this controller).
		rem.Status.Phase = v1alpha1.RemediationRunning
		rem.Status.Message = fmt.Sprintf("Waiting for NodeCycle %s, already working on the node, to end", open.Name)
		return reconcile.Result{}, nil
	}
	policy, err := r.PolicyFor(ctx, m.Namespace, node)
	if err != nil {
		r.fail(rem, err.Error())
		return reconcile.Result{}, nil
	}
	spec := r.Config.CycleSpec(node.Name, policy)
	spec.Strategies = append([]v1alpha1.Strategy(nil), rem.Spec.Strategies...)
	if len(spec.Strategies) == 0 {
		spec.Strategies = []v1alpha1.Strategy{v1alpha1.StrategyReboot, v1alpha1.StrategyPowerCycle, v1alpha1.StrategyReplace}
	}
	_, spec.ControlPlane = m.Labels[clusterv1.MachineControlPlaneLabel]
	spec.ClusterName, spec.MachineName, spec.Remediation = m.Spec.ClusterName, m.Name, rem.Name
	spec.BootID, spec.Attempt = nodes.BootID(node), rem.Status.Attempts+1
	if !nodes.IsReady(node) && spec.Drain.SkipWaitForDeleteTimeoutSeconds == 0 {
		spec.Drain.SkipWaitForDeleteTimeoutSeconds = unreachableSkipWait
	}
	nc := &v1alpha1.NodeCycle{
		ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: rem.Name + "-remediation-" + strconv.Itoa(int(spec.Attempt)),
			Labels:      map[string]string{LabelRemediation: string(rem.UID)},
			Annotations: map[string]string{v1alpha1.AnnotationPriority: remediationPriority}},
		Spec: spec,
	}
	if err := r.Client.Create(ctx, nc); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return reconcile.Result{RequeueAfter: time.Second}, nil // the cache is behind
		}
		return reconcile.Result{}, fmt.Errorf("creating NodeCycle for remediation %s: %w", rem.Name, err)
	}
	logf.FromContext(ctx).Info("Remediation NodeCycle created", "NodeCycle", client.ObjectKeyFromObject(nc), "attempt", spec.Attempt)
	r.Recorder.Eventf(m, rem, corev1.EventTypeNormal, string(v1alpha1.ReasonNodeCycleCreated), "Remediate",
		"MachineHealthCheck remediation: NodeCycle %s/%s created (attempt %d of %d, strategy %v)", nc.Namespace, nc.Name, spec.Attempt, retryLimit(rem), spec.Strategies)
	rem.Status.Phase, rem.Status.Attempts, rem.Status.NodeCycle = v1alpha1.RemediationRunning, spec.Attempt, nc.Name
	rem.Status.Message = fmt.Sprintf("NodeCycle %s (attempt %d of %d) created", nc.Name, spec.Attempt, retryLimit(rem))
	return reconcile.Result{}, nil
}

// SetupWithManager registers the Reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("nodecycle-remediation").
		For(&v1alpha1.NodeCycleRemediation{}).
		// A remediation's NodeCycle that moves on moves the remediation.
		Watches(&v1alpha1.NodeCycle{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			nc := o.(*v1alpha1.NodeCycle)
			if nc.Spec.Remediation != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: nc.Namespace, Name: nc.Spec.Remediation}}}
			}
			// A planned NodeCycle that ends may let a waiting remediation go.
			if nc.Status.Phase.Terminal() && nc.Spec.MachineName != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: nc.Namespace, Name: nc.Spec.MachineName}}}
			}
			return nil
		}))
	if r.ClusterSource != nil {
		b = b.WatchesRawSource(r.ClusterSource)
	}
	return b.Complete(r)
}

// InCluster enqueues the remediations of a Cluster's namespace (on the
// connect of its workload cluster).
func InCluster(c client.Reader) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.NodeCycleRemediationList
		if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return reqs
	}
}
