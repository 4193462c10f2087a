package nodecycle

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/printable"
)

// save persists what the reconcile changed in the NodeCycle's status, the one
// way every status is written: a patch with an optimistic lock, so that a
// decision made on a NodeCycle as read is never written over a newer one
// (a conflict means: read again and decide again).
func (r *Reconciler) save(ctx context.Context, s *scope) error {
	// Messages quote what users wrote (a pause's reason, a node name).
	s.nc.Status.Message = printable.String(s.nc.Status.Message)
	if equality.Semantic.DeepEqual(s.before.Status, s.nc.Status) {
		return nil
	}
	patch := client.MergeFromWithOptions(s.before, client.MergeFromWithOptimisticLock{})
	if err := r.Client.Status().Patch(ctx, s.nc, patch); err != nil {
		return fmt.Errorf("saving status of NodeCycle %s/%s: %w", s.nc.Namespace, s.nc.Name, err)
	}
	if from, to := s.before.Status.Phase, s.nc.Status.Phase; from != to {
		logf.FromContext(ctx).Info("Phase changed", "from", from, "to", to, "message", s.nc.Status.Message)
		if to.Terminal() {
			r.Metrics.finished(s.currentName(), s.nc)
		}
	}
	s.before = s.nc.DeepCopy()
	// Kept after the end too: a stale read of a NodeCycle that just ended
	// would do its last work again. Forgotten when the NodeCycle is gone.
	r.saved.Store(types.NamespacedName{Namespace: s.nc.Namespace, Name: s.nc.Name}, s.nc.ResourceVersion)
	return nil
}

// leaving writes MaintenanceInProgress=False before the reconcile's save ends
// the NodeCycle, which frees its slot: the next node's True must never
// overlap this one's.
func (r *Reconciler) leaving(ctx context.Context, s *scope) error {
	if s.node == nil || !s.nc.Status.Phase.Terminal() || s.before.Status.Phase.Terminal() {
		return nil
	}
	return r.setCondition(ctx, s)
}

// publish tells the operator, after the reconcile is saved: Events on the Node
// (or its Machine) and the Node's MaintenanceInProgress condition.
func (r *Reconciler) publish(ctx context.Context, s *scope) {
	s.publishEvents()
	if s.node == nil {
		return
	}
	if err := r.setCondition(ctx, s); err != nil {
		logf.FromContext(ctx).Error(err, "Updating node condition")
	}
}

// setCondition writes the Node's MaintenanceInProgress for the NodeCycle's
// phase, only when it says something new. Each write is a Node status
// patch, so: a quiet phase (one that passes within a reconcile or two:
// Cordoning, Rebooting, Uncordoning) is not written, and a message alone
// (drain progress, a wait's detail) refreshes the condition at most every
// messageRefresh. Status and reason are always written at once.
func (r *Reconciler) setCondition(ctx context.Context, s *scope) error {
	status, reason := corev1.ConditionFalse, v1alpha1.ReasonMaintenancePending
	spec, known := s.phase()
	switch p := s.nc.Status.Phase; {
	case spec.Quiet:
		return nil
	case p.Active():
		status, reason = corev1.ConditionTrue, spec.Reason
		if !known {
			reason = v1alpha1.Reason(p)
		}
	case p == v1alpha1.PhaseSucceeded:
		reason = v1alpha1.ReasonMaintenanceCompleted
	case p == v1alpha1.PhaseFailed:
		reason = v1alpha1.ReasonMaintenanceFailed
	case p == v1alpha1.PhaseSkipped:
		reason = v1alpha1.ReasonMaintenanceSkipped
	}
	if c := nodes.Condition(s.node, v1alpha1.ConditionMaintenanceInProgress); c != nil && c.Status == status &&
		c.Reason == string(reason) && s.now.Sub(c.LastHeartbeatTime.Time) < messageRefresh {
		return nil
	}
	return nodes.SetMaintenanceCondition(ctx, s.workload().Client, s.node, status, reason, s.nc.Status.Message, s.now)
}

// messageRefresh is how often a condition whose status and reason stay is
// rewritten for a new message.
const messageRefresh = 10 * time.Second

// publishEvents records the reconcile's Events. A reconcile whose save lost to a
// conflict publishes them too: what it did to the cluster (a cordon lifted,
// a pod evicted) happened, and the work done again from the NodeCycle as
// it was may no longer see it to tell.
func (s *scope) publishEvents() {
	if s.target != nil {
		for _, e := range s.events {
			related := e.related
			if related == nil {
				related = s.nc
			}
			s.target.Eventf(s.node, related, e.eventType, e.reason, string(s.nc.Status.Phase), "%s", e.message)
		}
	}
	s.events = nil
}
