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

// leaving writes the Node's conditions of the end before the reconcile's
// save ends the NodeCycle, which frees its slot: the next node's
// MaintenanceInProgress=True must never overlap this one's.
func (r *Reconciler) leaving(ctx context.Context, s *scope) error {
	if s.node == nil || !s.nc.Status.Phase.Terminal() || s.before.Status.Phase.Terminal() {
		return nil
	}
	return r.setConditions(ctx, s)
}

// publish tells the operator, after the reconcile is saved: Events on the Node
// (or its Machine) and the Node's conditions.
func (r *Reconciler) publish(ctx context.Context, s *scope) {
	s.publishEvents()
	if s.node == nil {
		return
	}
	if err := r.setConditions(ctx, s); err != nil {
		logf.FromContext(ctx).Error(err, "Updating node conditions")
	}
}

// setConditions writes the Node's lifecycle conditions (MaintenancePlanned,
// DrainInProgress, Drained, MaintenanceInProgress) for the NodeCycle's
// phase, in one Node status patch, only when they say something new. So: a
// quiet phase (one that passes within a reconcile or two: Cordoning,
// Rebooting, Uncordoning) is not written, and a message alone (drain
// progress, a wait's detail) is written at most every messageRefresh; while
// the drain runs, its condition is rewritten at least every drainHeartbeat
// (its heartbeat says the drain is alive). Status and reason are always
// written at once.
func (r *Reconciler) setConditions(ctx context.Context, s *scope) error {
	spec, known := s.phase()
	if spec.Quiet {
		return nil
	}
	var write []corev1.NodeCondition
	due := false
	for _, w := range s.lifecycle(spec, known) {
		c := nodes.Condition(s.node, w.Type)
		if nodes.SameCondition(c, w) {
			if w.Type == v1alpha1.ConditionDrainInProgress && w.Status == corev1.ConditionTrue && s.now.Sub(c.LastHeartbeatTime.Time) >= drainHeartbeat {
				write, due = append(write, w), true
			}
			continue
		}
		write = append(write, w)
		if c == nil || c.Status != w.Status || c.Reason != w.Reason || s.now.Sub(c.LastHeartbeatTime.Time) >= messageRefresh {
			due = true
		}
	}
	if !due {
		return nil
	}
	return nodes.PatchConditions(ctx, s.workload().Client, s.node, write, s.now)
}

// lifecycle is what the Node's lifecycle conditions say in the NodeCycle's
// phase (see ConditionMaintenancePlanned).
func (s *scope) lifecycle(spec PhaseSpec, known bool) []corev1.NodeCondition {
	p := s.nc.Status.Phase
	msg := s.nc.Status.Message
	end := v1alpha1.ReasonMaintenancePending // also the reason of what has not begun
	switch p {
	case v1alpha1.PhaseSucceeded:
		end = v1alpha1.ReasonMaintenanceCompleted
	case v1alpha1.PhaseFailed:
		end = v1alpha1.ReasonMaintenanceFailed
	case v1alpha1.PhaseSkipped:
		end = v1alpha1.ReasonMaintenanceSkipped
	}
	// Every condition gets a message: an empty one would leave the last
	// one in place (a patch omits it).
	planned := condition(v1alpha1.ConditionMaintenancePlanned, false, end, msg)
	draining := condition(v1alpha1.ConditionDrainInProgress, false, end, msg)
	drained := condition(v1alpha1.ConditionDrained, false, end, msg)
	inProgress := condition(v1alpha1.ConditionMaintenanceInProgress, false, end, msg)
	switch {
	case p == "" || p == v1alpha1.PhasePending:
		why := s.waiting
		if why == "" {
			why = v1alpha1.ReasonMaintenancePending
		}
		planned = condition(v1alpha1.ConditionMaintenancePlanned, true, why, msg)
		draining = condition(v1alpha1.ConditionDrainInProgress, false, end, notStarted)
		drained = condition(v1alpha1.ConditionDrained, false, end, notStarted)
	case p.Active():
		reason := spec.Reason
		if !known {
			reason = v1alpha1.Reason(p)
		}
		planned = condition(v1alpha1.ConditionMaintenancePlanned, false, v1alpha1.ReasonMaintenanceStarted, "The maintenance started")
		inProgress = condition(v1alpha1.ConditionMaintenanceInProgress, true, reason, msg)
		switch {
		case p == v1alpha1.PhaseDraining:
			draining = condition(v1alpha1.ConditionDrainInProgress, true, v1alpha1.ReasonDraining, msg)
			drained = condition(v1alpha1.ConditionDrained, false, v1alpha1.ReasonDraining, "The drain runs")
		case s.drainedFirst():
			draining = condition(v1alpha1.ConditionDrainInProgress, false, v1alpha1.ReasonDrained, "The drain is done")
			drained = condition(v1alpha1.ConditionDrained, true, v1alpha1.ReasonDrained, "Drained by nodecycle; cordoned until the maintenance ends")
		default: // a strategy that takes the node away drains it its own way
			draining = condition(v1alpha1.ConditionDrainInProgress, false, reason, byStrategy)
			drained = condition(v1alpha1.ConditionDrained, false, reason, byStrategy)
		}
	}
	return []corev1.NodeCondition{planned, draining, drained, inProgress}
}

const (
	notStarted = "The maintenance has not started"
	byStrategy = "The strategy takes the node away; nodecycle does not drain it"
)

// drainedFirst says whether nodecycle drained the node before its
// strategy began: the ladder's first strategy keeps the node (an
// escalation keeps the node drained).
func (s *scope) drainedFirst() bool {
	if len(s.nc.Spec.Strategies) == 0 {
		return false
	}
	st, ok := s.table[s.nc.Spec.Strategies[0]]
	return ok && st.InPlace()
}

func condition(t corev1.NodeConditionType, status bool, reason v1alpha1.Reason, message string) corev1.NodeCondition {
	st := corev1.ConditionFalse
	if status {
		st = corev1.ConditionTrue
	}
	return corev1.NodeCondition{Type: t, Status: st, Reason: string(reason), Message: message}
}

// messageRefresh is how often a condition whose status and reason stay is
// rewritten for a new message; drainHeartbeat, how often DrainInProgress=True
// is rewritten when nothing changed.
const (
	messageRefresh = 10 * time.Second
	drainHeartbeat = 30 * time.Second
)

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
