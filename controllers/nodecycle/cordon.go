package nodecycle

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/drain"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// cordon marks the node unschedulable, and marks the cordon as nodecycle's
// so that only nodecycle's own cordons are ever lifted. A node that keeps
// its Machine is first kept off MachineHealthChecks.
func (r *Reconciler) cordon(ctx context.Context, s *scope) (reconcile.Result, error) {
	owner := cycles.Owner(s.nc)
	// A remediation's Machine stays the MachineHealthCheck's: it asked.
	if s.inPlaceAnywhere() && s.nc.Spec.Remediation == "" {
		paused, err := s.target.PauseRemediation(ctx, owner)
		if err != nil {
			return reconcile.Result{}, err
		}
		if paused {
			s.event(corev1.EventTypeNormal, v1alpha1.ReasonRemediationPaused, "Machine %s annotated %s for the maintenance", s.target.Machine(), clusterv1.MachineSkipRemediationAnnotation)
		}
	}
	// The Event of the cordon also says what comes next: one Event, not two.
	next := "; " + string(s.currentName()) + " follows"
	if st, _ := s.current(); st.InPlace() {
		next = fmt.Sprintf("; draining it (timeout %s)", s.nc.Spec.Drain.Timeout.Duration)
	}
	switch {
	case s.node.Annotations[v1alpha1.AnnotationCordonedBy] == owner:
		// done before a restart
	case s.node.Spec.Unschedulable && s.node.Annotations[v1alpha1.AnnotationCordonedBy] == "":
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonAlreadyCordoned, "Node was already cordoned by someone else; it will stay cordoned afterwards%s", next)
	default:
		if err := nodes.Cordon(ctx, s.workload().Client, s.node, owner, s.hookLabels()); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{RequeueAfter: conflictRetry}, nil
			}
			return reconcile.Result{}, fmt.Errorf("cordoning node %s: %w", s.node.Name, err)
		}
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonCordoned, "Node cordoned by nodecycle%s", next)
	}
	// A cordon nodecycle did not write itself left the waiting taint on.
	if err := nodes.SetWaitingTaint(ctx, s.workload().Client, s.node, false); err != nil {
		return reconcile.Result{}, fmt.Errorf("taking the waiting taint off node %s: %w", s.node.Name, err)
	}
	if st, _ := s.current(); !st.InPlace() {
		s.startCurrent() // the strategy takes the node away, draining it its own way
		return reconcile.Result{}, nil
	}
	s.moveTo(v1alpha1.PhaseDraining, "Draining the node")
	return reconcile.Result{}, nil
}

// drain evicts what it may now, without blocking, and requeues until the node is
// empty or the drain timeout passes.
func (r *Reconciler) drain(ctx context.Context, s *scope) (reconcile.Result, error) {
	if r.podWatch != nil {
		r.podWatch.ensure(ctx, s)
	}
	rules, err := s.target.DrainRules(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	via, refusal, err := r.viaRequests(s)
	if err != nil {
		return reconcile.Result{}, err
	}
	if refusal != "" {
		s.drainFailed(v1alpha1.ReasonDrainRefused, refusal)
		return reconcile.Result{}, nil
	}
	if via {
		// Held before the first request: a NodeCycle deleted from now on
		// withdraws its requests.
		if err = s.hold(ctx, r.Client, v1alpha1.FinalizerWithdrawEvictions); err != nil {
			return reconcile.Result{}, err
		}
	}
	d := drain.Drainer{Reader: s.workload().Reader, Writer: s.workload().Client, Rules: rules, Requests: via}
	res, err := d.Step(ctx, s.node.Name, s.nc.Spec.Drain, s.now)
	timeout := s.nc.Spec.Drain.Timeout.Duration
	if err != nil {
		// The drain timeout holds whatever the errors: a step that keeps
		// failing ends the drain at the timeout as any other.
		// Each retry (at the controller's back-off) checks the timeout.
		if elapsed := s.elapsed(); elapsed >= timeout {
			s.drainFailed(v1alpha1.ReasonDrainTimeout, fmt.Sprintf("Drain did not finish within %s; its last step failed: %v", timeout, err))
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	r.tellRequests(s, res)
	for _, p := range res.Waiting {
		if p.Reason == drain.ReasonEvicted {
			ns, name, _ := strings.Cut(p.Pod, "/")
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			s.eventAbout(pod, corev1.EventTypeNormal, v1alpha1.ReasonEvicted, "Evicted pod %s", p.Pod)
		}
	}
	elapsed := s.elapsed()
	if len(res.Refused) > 0 {
		s.drainFailed(v1alpha1.ReasonDrainRefused, fmt.Sprintf("Drain cannot finish, pods that the drain settings forbid evicting: %s", res.Summary(5)))
		return reconcile.Result{}, nil
	}
	if res.Done() {
		r.Metrics.drainDuration.Observe(elapsed.Seconds())
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonDrained, "Node drained in %s", elapsed.Round(time.Second))
		return s.drained()
	}
	if elapsed >= timeout && s.nc.Spec.Drain.DeleteAfterTimeout {
		return r.deleteAfterTimeout(ctx, s, d, res, via)
	}
	if elapsed >= timeout {
		s.drainFailed(v1alpha1.ReasonDrainTimeout, fmt.Sprintf("Drain did not finish within %s; %d pods still on the node: %s", timeout, len(res.Waiting), res.Summary(5)))
		return reconcile.Result{}, nil
	}
	s.nc.Status.Message = fmt.Sprintf("Draining: %d pods still on the node: %s", len(res.Waiting), res.Summary(5))
	return reconcile.Result{RequeueAfter: min(drainPollInterval, timeout-elapsed)}, nil
}

// deleteAfterTimeout deletes the pods a timed-out drain left
// (deleteAfterTimeout), then waits until every pod the drain evicted or
// deleted is gone from the node: a reboot is never requested while one is
// still there (its containers may still be writing). They get one more
// drain timeout; then the drain fails DrainTimeout. Pods left that are
// never removed (WaitCompleted) do not hold the reboot.
func (r *Reconciler) deleteAfterTimeout(ctx context.Context, s *scope, d drain.Drainer, res drain.Result, via bool) (reconcile.Result, error) {
	timeout := s.nc.Spec.Drain.Timeout.Duration
	// The requests go first, as on any end of the drain: a responder
	// must not go on working on a pod that is deleted under it.
	if via {
		if err := r.withdraw(ctx, s, "the drain timed out: deleteAfterTimeout deletes the pods left"); err != nil {
			return reconcile.Result{}, err
		}
	}
	deleted, err := d.DeleteRemaining(ctx, s.node.Name, s.nc.Spec.Drain)
	if err != nil {
		return reconcile.Result{}, err
	}
	if len(deleted) > 0 {
		s.event(corev1.EventTypeWarning, v1alpha1.ReasonPodsDeleted, "Drain did not finish within %s; deleted the %d pods left (deleteAfterTimeout): %s",
			timeout, len(deleted), strings.Join(deleted, ", "))
		s.nc.Status.Message = fmt.Sprintf("Drain timed out; waiting for the %d pods deleted (deleteAfterTimeout) to go: %s", len(deleted), strings.Join(deleted, ", "))
		return reconcile.Result{RequeueAfter: drainPollInterval}, nil
	}
	going := drain.Result{Waiting: res.Going()}
	if len(going.Waiting) == 0 {
		return s.drained()
	}
	if s.elapsed() >= 2*timeout {
		s.drainFailed(v1alpha1.ReasonDrainTimeout, fmt.Sprintf("Drain did not finish within %s, and %d pods it removed were still on the node %s later: %s",
			timeout, len(going.Waiting), timeout, going.Summary(5)))
		return reconcile.Result{}, nil
	}
	s.nc.Status.Message = fmt.Sprintf("Drain timed out; waiting for the %d pods it removed to go: %s", len(going.Waiting), going.Summary(5))
	return reconcile.Result{RequeueAfter: drainPollInterval}, nil
}

// drainFailed ends a drain that cannot finish the way its drain.failure
// says; the message says what follows.
func (s *scope) drainFailed(reason v1alpha1.Reason, message string) {
	switch s.nc.Spec.Drain.Failure {
	case v1alpha1.DrainFailureLeaveCordoned:
		message += "; drain.failure LeaveCordoned: the node stays cordoned and is tried again after the retry backoff"
	case v1alpha1.DrainFailureSkipNode:
		message += fmt.Sprintf("; drain.failure SkipNode: the node is uncordoned and not tried again on boot %s (deleting this NodeCycle allows one more attempt)", s.nc.Spec.BootID)
	}
	s.fail(reason, message)
}

// drained goes on from a drained node: to its pre-reboot hooks while one
// is held, else to the strategy.
func (s *scope) drained() (reconcile.Result, error) {
	if held := nodes.Hooks(s.node, v1alpha1.PrefixPreRebootHook); len(held) > 0 {
		s.moveTo(v1alpha1.PhaseWaitingForPreRebootHooks, hooksMessage(beforeReboot, held, s.hookTimeout()))
		return reconcile.Result{RequeueAfter: s.hookTimeout()}, nil
	}
	s.startCurrent()
	return reconcile.Result{}, nil
}

// uncordon lifts nodecycle's cordon when the node is Ready, then ends the
// NodeCycle. A node that is not Ready after a failure stays cordoned; the
// node's reconciler lifts the cordon once it is Ready again.
func (r *Reconciler) uncordon(ctx context.Context, s *scope) (reconcile.Result, error) {
	outcome := s.nc.Status.Outcome
	if outcome == "" {
		outcome = v1alpha1.PhaseSucceeded
	}
	message := s.nc.Status.Message
	if outcome == v1alpha1.PhaseSucceeded {
		message = fmt.Sprintf("Node rebooted (boot ID %q -> %q) and returned to service", s.nc.Status.BootIDBefore, s.nc.Status.BootIDAfter)
	}
	_, ours := s.node.Annotations[v1alpha1.AnnotationCordonedBy]
	held := nodes.Hooks(s.node, v1alpha1.PrefixPostRebootHook)
	leave := ours && s.nc.Spec.Drain.Failure == v1alpha1.DrainFailureLeaveCordoned && cycles.DrainFailed(s.nc)
	switch {
	case ours && s.rebootPending():
		// The node may still reboot: pods back on it would go down with it.
	case leave:
		s.event(corev1.EventTypeWarning, v1alpha1.ReasonLeftCordoned, "Node left cordoned: its drain could not finish and drain.failure is LeaveCordoned; "+
			"it stays cordoned until a later attempt ends, it runs a new boot or no longer asks for a reboot, or someone uncordons it")
	case ours && len(held) > 0:
		// After a failure too: the hooks' owners said the node may not serve yet.
		message += fmt.Sprintf("; post-reboot hooks still held (%s): the node stays cordoned until they are released", strings.Join(held, ", "))
	case ours && nodes.IsReady(s.node):
		if err := nodes.Uncordon(ctx, s.workload().Client, s.node); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{RequeueAfter: conflictRetry}, nil
			}
			return reconcile.Result{}, fmt.Errorf("uncordoning node %s: %w", s.node.Name, err)
		}
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonUncordoned, "Node uncordoned")
	case ours:
		message += "; the node is not Ready and stays cordoned until it is"
	case s.node.Spec.Unschedulable:
		message += "; the cordon is not nodecycle's (it was there before maintenance, or nodecycle.io/cordoned-by was removed) and stays cordoned"
	}
	if (!ours || !nodes.IsReady(s.node) || len(held) > 0 || leave) && !s.rebootPending() {
		if err := s.clearRebootRequest(ctx); err != nil {
			return reconcile.Result{}, err
		}
	}
	s.finish(outcome, "", message)
	// MachineHealthChecks are let back only once the node's conditions say
	// the maintenance ended (written before the save that ends the
	// NodeCycle: conclude), and a while after (resumeRemediation): one that
	// (wrongly) counts MaintenanceInProgress or Drained as unhealthy would
	// otherwise find them True for long past its timeout, and remediate a
	// node that is fine.
	return reconcile.Result{RequeueAfter: cycles.RemediationResumeDelay}, nil
}

// resumeRemediation lifts the skip-remediation of a finished NodeCycle's
// Machine, cycles.RemediationResumeDelay after its end; it says how long to wait
// before that.
func (r *Reconciler) resumeRemediation(ctx context.Context, nc *v1alpha1.NodeCycle) (time.Duration, error) {
	if nc.Spec.MachineName == "" || nc.Status.CompletionTime == nil {
		return 0, nil
	}
	if left := nc.Status.CompletionTime.Add(cycles.RemediationResumeDelay).Sub(r.Clock.Now()); left > 0 {
		return left, nil
	}
	target, err := r.Clusters.Target(ctx, nc)
	if err != nil {
		// The cluster cannot be reached (or is gone): the Machine
		// reconciler lifts the marker of a finished NodeCycle.
		return 0, nil
	}
	return 0, target.ResumeRemediation(ctx, cycles.Owner(nc))
}
