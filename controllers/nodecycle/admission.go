package nodecycle

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// admit takes a maintenance slot of the cluster for the NodeCycle, or waits
// (Pending) and says why in the message: the admission checks run in
// order, then the slot is taken under the cluster's admission lock
// (slots.go has the slot rule, gates.go the gates).
func (r *Reconciler) admit(ctx context.Context, s *scope) (reconcile.Result, error) {
	res, err := r.tryAdmit(ctx, s)
	if err != nil {
		return res, err
	}
	// taintWhileWaiting: on while Pending; off when it ends without
	// starting (the cordon takes it off when it starts).
	p := s.nc.Status.Phase
	want := p == v1alpha1.PhasePending && ptr.Deref(s.nc.Spec.TaintWhileWaiting, false)
	if (want || p.Terminal()) && want != nodes.HasWaitingTaint(s.node) {
		if err := nodes.SetWaitingTaint(ctx, s.workload().Client, s.node, want); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{RequeueAfter: conflictRetry}, nil
			}
			return reconcile.Result{}, fmt.Errorf("tainting node %s: %w", s.node.Name, err)
		}
	}
	return res, nil
}

// An admissionCheck is one condition of the admission. It lets the
// NodeCycle go on (hold false), holds it in Pending (hold true: it says
// why in the message, and when to look again in wait), or ends it
// (s.finish, hold true, wait 0). An error is retried with backoff.
type admissionCheck func(ctx context.Context, s *scope) (hold bool, wait time.Duration, err error)

// admissionChecks are the admission's checks in the order they run:
// those that ask nothing first; then the slot, from the cache, which
// answers "no slot" cheaply for the many waiting NodeCycles; then the gates
// that ask other servers (pods on the node, Alertmanager); last the
// strategies' checks (provider calls), before the admission lock is taken,
// so that a slow BMC does not hold up other NodeCycles' admission.
func (r *Reconciler) admissionChecks() []admissionCheck {
	return []admissionCheck{
		r.eligible,
		knownStrategies,
		stillNeeded,
		pending,
		nodeReady,
		clusterNotPaused,
		r.window,
		r.workersFirst,
		r.slotLikelyFree,
		r.notFrozen,
		r.notPaused,
		r.settled,
		r.healthyBudgets,
		r.noBlockingAlerts,
		r.noBlockingQueries,
		r.noBlockingPods,
		r.controlPlaneHealthy,
		r.kubeadmControlPlaneReady,
		agentBack,
		strategiesReady,
	}
}

// tryAdmit is admit without the taint of a waiting node.
func (r *Reconciler) tryAdmit(ctx context.Context, s *scope) (reconcile.Result, error) {
	for _, check := range r.admissionChecks() {
		if hold, wait, err := check(ctx, s); err != nil || hold {
			if err != nil {
				wait = 0
			}
			return reconcile.Result{RequeueAfter: wait}, err
		}
	}
	return r.takeSlot(ctx, s)
}

// eligible skips a node that the node selector no longer selects, or that
// is excluded.
func (r *Reconciler) eligible(_ context.Context, s *scope) (bool, time.Duration, error) {
	if ok, reason, msg := r.Config.Eligibility(s.node); !ok {
		s.finish(v1alpha1.PhaseSkipped, reason, msg)
		return true, 0, nil
	}
	return false, 0, nil
}

// knownStrategies fails a ladder that names a strategy the table lacks.
func knownStrategies(_ context.Context, s *scope) (bool, time.Duration, error) {
	for _, name := range s.nc.Spec.Strategies {
		if _, ok := s.table[name]; !ok {
			s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidStrategy, fmt.Sprintf("Strategy %q of the ladder %s is unknown", name, ladderString(s.nc.Spec.Strategies)))
			return true, 0, nil
		}
	}
	return false, 0, nil
}

// stillNeeded skips a NodeCycle whose node no longer needs a reboot. An
// on-demand request needs no RebootRequired: a person asked; nor a
// remediation: a MachineHealthCheck did.
func stillNeeded(_ context.Context, s *scope) (bool, time.Duration, error) {
	asked := s.nc.Spec.Request != nil || s.nc.Spec.Remediation != ""
	if !asked && !nodes.IsConditionTrue(s.node, v1alpha1.ConditionRebootRequired) {
		s.finish(v1alpha1.PhaseSkipped, v1alpha1.ReasonRebootNoLongerRequired, fmt.Sprintf("Node no longer has %s=True", v1alpha1.ConditionRebootRequired))
		return true, 0, nil
	}
	return false, 0, nil
}

// pending marks a new NodeCycle Pending, with the strategy it will start
// with (shown while it waits).
func pending(_ context.Context, s *scope) (bool, time.Duration, error) {
	if s.nc.Status.Phase == "" {
		s.nc.Status.Phase = v1alpha1.PhasePending
		s.nc.Status.Strategy = s.currentName()
	}
	return false, 0, nil
}

// nodeReady waits for the node to be Ready; an unhealthy node is a
// remediation's very reason.
func nodeReady(_ context.Context, s *scope) (bool, time.Duration, error) {
	if !nodes.IsReady(s.node) && s.nc.Spec.Remediation == "" {
		s.waitFor(v1alpha1.ReasonNodeNotReady, "Waiting for the node to be Ready before starting")
		return true, slotPollInterval, nil
	}
	return false, 0, nil
}

// clusterNotPaused waits while the node's cluster is paused (a Cluster API
// Cluster's pause).
func clusterNotPaused(ctx context.Context, s *scope) (bool, time.Duration, error) {
	why, err := s.target.Paused(ctx, s.nc.Spec.Update != nil)
	if err != nil || why == "" {
		return err != nil, 0, err
	}
	s.waitFor(v1alpha1.ReasonPaused, "Waiting: "+why)
	return true, slotPollInterval, nil
}

// slotLikelyFree waits, from the cache, while the cluster has no slot for
// the NodeCycle, the ones ahead of it in the queue served first.
func (r *Reconciler) slotLikelyFree(ctx context.Context, s *scope) (bool, time.Duration, error) {
	c, err := r.countSlots(ctx, r.Client, s)
	if err != nil {
		return false, 0, err
	}
	if !c.free(true) {
		r.waitForSlot(s, c, true)
		return true, slotPollInterval, nil
	}
	return false, 0, nil
}

// agentBack holds a NodeCycle that starts with the in-place reboot while no
// Ready agent runs on its node (a node just rebooted, whose agent is not
// back yet), for up to its reboot timeout from its creation: cordoning and
// draining a node whose reboot cannot be asked would be for nothing. After
// that it goes on, and the reboot's own check fails or escalates it.
func agentBack(ctx context.Context, s *scope) (bool, time.Duration, error) {
	st, ok := s.table[s.currentName()].(*reboot)
	if !ok || s.now.Sub(s.nc.CreationTimestamp.Time) >= s.nc.Spec.RebootTimeout.Duration {
		return false, 0, nil
	}
	ready, err := st.agentReady(ctx, s.workload().Reader, s.node.Name)
	if err != nil || ready {
		return false, 0, err
	}
	s.waitFor(v1alpha1.ReasonNodeNotReady, fmt.Sprintf("Waiting for a Ready nodecycle agent pod (%s) on the node", st.agentSelector))
	return true, agentPollInterval, nil
}

// strategiesReady runs every strategy's Check: one that fails ends the
// NodeCycle, nothing done to the node (it is retried with backoff).
func strategiesReady(ctx context.Context, s *scope) (bool, time.Duration, error) {
	for _, name := range s.nc.Spec.Strategies {
		if reason, err := s.table[name].Check(ctx, s); err != nil {
			s.finish(v1alpha1.PhaseFailed, reason, err.Error())
			return true, 0, nil
		}
	}
	return false, 0, nil
}

// takeSlot confirms the free slot against the API server and takes it,
// under the cluster's admission lock: the NodeCycle is saved in Cordoning
// while the lock is held, so the next admission's live read sees the slot
// taken. A conflict means the NodeCycle changed since it was read: nothing
// is taken, and it is decided again.
func (r *Reconciler) takeSlot(ctx context.Context, s *scope) (reconcile.Result, error) {
	lock, _ := r.admission.LoadOrStore(s.nc.Namespace+"/"+s.nc.Spec.ClusterName, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	c, err := r.countSlots(ctx, r.APIReader, s)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !c.free(false) {
		r.waitForSlot(s, c, false)
		return reconcile.Result{RequeueAfter: slotPollInterval}, nil
	}
	now := metav1.NewMicroTime(s.now)
	s.nc.Status.StartTime = &now
	if w := s.nc.Spec.WaitForPods; w != nil && s.node != nil {
		s.nc.Status.StartupTaintsAtStart = startupTaints(s.node, w.StartupTaints, nil)
	}
	s.moveTo(v1alpha1.PhaseCordoning, "Cordoning the node")
	s.event(corev1.EventTypeNormal, v1alpha1.ReasonMaintenanceStarted, "Maintenance started (strategy %s, attempt %d)", ladderString(s.nc.Spec.Strategies), s.nc.Spec.Attempt)
	if err := r.save(ctx, s); err != nil {
		if apierrors.IsConflict(err) {
			s.discard()
			return reconcile.Result{RequeueAfter: conflictRetry}, nil
		}
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, nil
}
