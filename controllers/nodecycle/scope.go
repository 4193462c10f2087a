package nodecycle

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
)

// scope is the work of one reconcile on one NodeCycle: the status it
// changes in memory and the Events it will tell once the status is saved.
type scope struct {
	nc *v1alpha1.NodeCycle
	// before is the NodeCycle as last saved: the base of the next save.
	before *v1alpha1.NodeCycle
	// node is nil when the Node does not exist.
	node   *corev1.Node
	target cluster.Target
	now    time.Time
	table  Table
	events []pendingEvent
	// waiting is what a Pending NodeCycle waits for, as the reason of the
	// Node's MaintenancePlanned (set with its message by waitFor).
	waiting v1alpha1.Reason
}

type pendingEvent struct {
	eventType string
	reason    v1alpha1.Reason
	message   string
	// related is what the Event is about besides the node; nil: the
	// NodeCycle.
	related runtime.Object
}

func (r *Reconciler) newScope(nc *v1alpha1.NodeCycle) *scope {
	s := &scope{nc: nc, before: nc.DeepCopy(), now: r.Clock.Now(), table: r.Strategies}
	s.alignStep()
	return s
}

// workload reaches the node's cluster.
func (s *scope) workload() cluster.Workload { return s.target.Workload() }

func (s *scope) event(eventType string, reason v1alpha1.Reason, format string, args ...any) {
	s.events = append(s.events, pendingEvent{eventType: eventType, reason: reason, message: fmt.Sprintf(format, args...)})
}

// eventAbout is event with another related object than the NodeCycle.
// Events of one reason about one node are told apart by it: the recorder
// folds those with the same regarding and related objects into one series,
// whatever their messages say.
func (s *scope) eventAbout(related runtime.Object, eventType string, reason v1alpha1.Reason, format string, args ...any) {
	s.events = append(s.events, pendingEvent{eventType: eventType, reason: reason, message: fmt.Sprintf(format, args...), related: related})
}

// waitFor holds the NodeCycle in Pending for reason, which message tells.
func (s *scope) waitFor(reason v1alpha1.Reason, message string) {
	s.waiting = reason
	s.nc.Status.Message = message
}

// discard forgets what the reconcile changed since the last save.
func (s *scope) discard() {
	s.nc.Status = *s.before.Status.DeepCopy()
	s.events = nil
}

// elapsed is how long the NodeCycle has been in its phase.
func (s *scope) elapsed() time.Duration {
	if s.nc.Status.PhaseStartTime == nil {
		return 0 // a status edited by hand: count from now
	}
	return s.now.Sub(s.nc.Status.PhaseStartTime.Time)
}

// moveTo enters phase p: it records how long the previous phase took.
func (s *scope) moveTo(p v1alpha1.Phase, message string) {
	st := &s.nc.Status
	if st.PhaseStartTime != nil && st.Phase.Active() {
		st.PhaseDurations = append(st.PhaseDurations, v1alpha1.PhaseDuration{
			Phase: st.Phase, Duration: v1alpha1.NewDuration(s.now.Sub(st.PhaseStartTime.Time).Round(time.Millisecond)),
		})
	}
	st.Phase = p
	st.Message = message
	now := metav1.NewMicroTime(s.now)
	st.PhaseStartTime = &now
}

// fail records why the operation failed and sends it to Uncordoning, which
// undoes nodecycle's cordon before the NodeCycle ends as Failed.
func (s *scope) fail(reason v1alpha1.Reason, message string) {
	s.nc.Status.Outcome = v1alpha1.PhaseFailed
	s.nc.Status.Reason = reason
	s.event(corev1.EventTypeWarning, reason, "%s", message)
	s.moveTo(v1alpha1.PhaseUncordoning, message)
}

// finish ends the NodeCycle in a terminal phase.
func (s *scope) finish(p v1alpha1.Phase, reason v1alpha1.Reason, message string) {
	st := &s.nc.Status
	s.moveTo(p, message)
	if reason != "" {
		st.Reason = reason
	}
	now := metav1.NewMicroTime(s.now)
	st.CompletionTime = &now
	switch p {
	case v1alpha1.PhaseSucceeded:
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonMaintenanceCompleted, "%s", message)
	case v1alpha1.PhaseFailed:
		s.event(corev1.EventTypeWarning, v1alpha1.ReasonMaintenanceFailed, "%s", message)
	default:
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonMaintenanceSkipped, "%s", message)
	}
}

// hold adds a finalizer to the NodeCycle (a no-op when it is there); the
// scope's NodeCycle carries it from then on.
func (s *scope) hold(ctx context.Context, c client.Client, finalizer string) error {
	if controllerutil.ContainsFinalizer(s.nc, finalizer) {
		return nil
	}
	held := s.before.DeepCopy()
	controllerutil.AddFinalizer(held, finalizer)
	if err := c.Patch(ctx, held, client.MergeFromWithOptions(s.before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer %s: %w", finalizer, err)
	}
	held.ObjectMeta.DeepCopyInto(&s.nc.ObjectMeta)
	held.ObjectMeta.DeepCopyInto(&s.before.ObjectMeta)
	return nil
}
