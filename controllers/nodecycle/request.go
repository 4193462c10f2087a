package nodecycle

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/printable"
)

// Resolver fills in on-demand requests (NodeCycles a person created with
// only spec.request and the node): the local mode's Node reconciler, or
// Cluster API mode's Machine reconciler, each by the rules it opens
// automatic NodeCycles with. A *cycles.Refused error refuses the request;
// another error is retried.
type Resolver interface {
	Resolve(ctx context.Context, nc *v1alpha1.NodeCycle) (v1alpha1.NodeCycleSpec, error)
}

// resolve fills in the spec of the on-demand request nc, or refuses it:
// Failed with RequestRefused, nothing done to any node. A resolved request
// then goes through the same gates, slots and proof as any NodeCycle.
func (r *Reconciler) resolve(ctx context.Context, nc *v1alpha1.NodeCycle) (reconcile.Result, error) {
	var spec v1alpha1.NodeCycleSpec
	err := errors.New("on-demand requests are not served by this manager")
	if r.Requests != nil {
		spec, err = r.Requests.Resolve(ctx, nc)
	}
	if err == nil {
		err = r.alreadyOpen(ctx, nc)
	}
	if refused := (*cycles.Refused)(nil); errors.As(err, &refused) {
		return reconcile.Result{}, r.refuse(ctx, nc, refused.Why)
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("resolving the on-demand request: %w", err)
	}
	resolved := nc.DeepCopy()
	resolved.Spec = spec
	if err := r.Client.Update(ctx, resolved); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: conflictRetry}, nil
		}
		if apierrors.IsInvalid(err) {
			return reconcile.Result{}, r.refuse(ctx, nc, fmt.Sprintf("the resolved spec is invalid: %v", err))
		}
		return reconcile.Result{}, fmt.Errorf("filling in the on-demand request: %w", err)
	}
	req := spec.Request
	logf.FromContext(ctx).Info("On-demand request accepted", "NodeCycle", client.ObjectKeyFromObject(nc), "strategies", spec.Strategies, "requestedBy", req.RequestedBy)
	if t, err := r.Clusters.Target(ctx, resolved); err == nil {
		node := &corev1.Node{}
		if t.Workload().Client.Get(ctx, client.ObjectKey{Name: spec.NodeName}, node) == nil {
			t.Eventf(node, resolved, corev1.EventTypeNormal, v1alpha1.ReasonNodeCycleCreated, "Queued",
				"On-demand request%s accepted: NodeCycle %s/%s, strategy %s", requestWho(req), nc.Namespace, nc.Name, ladderString(spec.Strategies))
		}
	}
	return reconcile.Result{}, nil
}

// alreadyOpen refuses a request for a node another NodeCycle is open for:
// two operations on one node could run at once with more than one slot.
func (r *Reconciler) alreadyOpen(ctx context.Context, nc *v1alpha1.NodeCycle) error {
	history, err := cycles.OfNode(ctx, r.Client, nc.Namespace, nc.Spec.ClusterName, nc.Spec.NodeName)
	if err != nil {
		return err
	}
	for _, other := range history {
		if other.Name != nc.Name && !other.Status.Phase.Terminal() {
			return cycles.Refusef("node %s already has NodeCycle %s (phase %s); wait for it or delete it", nc.Spec.NodeName, other.Name, phaseOrNew(other.Status.Phase))
		}
	}
	return nil
}

func phaseOrNew(p v1alpha1.Phase) v1alpha1.Phase {
	if p == "" {
		return "new"
	}
	return p
}

// refuse ends the request: Failed, RequestRefused, and a Warning Event on
// the NodeCycle (the node may not exist).
func (r *Reconciler) refuse(ctx context.Context, nc *v1alpha1.NodeCycle, why string) error {
	refused := nc.DeepCopy()
	now := metav1.NewMicroTime(r.Clock.Now())
	refused.Status.Phase = v1alpha1.PhaseFailed
	refused.Status.Reason = v1alpha1.ReasonRequestRefused
	refused.Status.Message = printable.String("Request refused: " + why)
	refused.Status.CompletionTime = &now
	if err := r.Client.Status().Patch(ctx, refused, client.MergeFromWithOptions(nc, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	logf.FromContext(ctx).Info("On-demand request refused", "NodeCycle", client.ObjectKeyFromObject(nc), "why", why)
	r.Recorder.Eventf(refused, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonRequestRefused), "Resolve", "Request refused: %s", why)
	return nil
}

// requestWho is " by NAME (REASON)" for the Events, or less.
func requestWho(req *v1alpha1.RequestSpec) string {
	s := ""
	if req.RequestedBy != "" {
		s = " by " + req.RequestedBy
	}
	if req.Reason != "" {
		s += fmt.Sprintf(" (%s)", req.Reason)
	}
	return s
}
