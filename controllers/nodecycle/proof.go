package nodecycle

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
)

// The proof of reboot, which every in-place strategy ends with: the node
// runs a boot other than the one recorded before the strategy acted, and
// is Ready. Then, before the uncordon, the node's pods (spec.waitForPods)
// and its post-reboot hooks are waited for.
//
//	WaitingForNodeReady -> [WaitingForPods] -> [WaitingForPostRebootHooks] -> Uncordoning

// waitForNewBoot is how the wait of every in-place strategy ends: the node
// runs a boot other than the one recorded before and is Ready (the proof of
// reboot), or the reboot timeout passes and the ladder goes on.
func (s *scope) waitForNewBoot(ctx context.Context) (reconcile.Result, error) {
	status := &s.nc.Status
	current := nodes.BootID(s.node)
	ready := nodes.IsReady(s.node)
	rebooted := current != "" && current != status.BootIDBefore
	proven, failed := s.updateProof(current)
	if failed != "" {
		if err := s.clearRebootRequest(ctx); err != nil {
			return reconcile.Result{}, err
		}
		s.fail(v1alpha1.ReasonUpdateFailed, failed)
		return reconcile.Result{}, nil
	}
	if rebooted && ready && proven {
		// The request goes with the uncordon, in one write.
		status.BootIDAfter = current
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonRebootVerified, "Node rebooted: boot ID %q -> %q, Ready", status.BootIDBefore, current)
		if u := s.nc.Spec.Update; u != nil {
			s.event(corev1.EventTypeNormal, v1alpha1.ReasonUpdateVerified, "In-place update %s in place on the new boot: %d files verified by the agent", u.ID, len(u.Files))
		}
		return s.afterProof(ctx)
	}
	acked := s.node.Annotations[v1alpha1.AnnotationRebootAck] == status.RebootRequestID
	waited := s.elapsed()
	timeout := s.nc.Spec.RebootTimeout.Duration
	if waited >= timeout {
		why := fmt.Sprintf("Node did not come back within %s after %s: boot ID %s, Ready=%t", timeout, s.currentName(), describeBoot(status.BootIDBefore, current), ready)
		if s.currentName() == v1alpha1.StrategyReboot {
			why += fmt.Sprintf(", agent acknowledged the request: %t", acked)
		}
		if s.rebootPending() && !s.hasNext() {
			// The agent took the request and the node may still go down (a
			// slow shutdown, a long POST): the request, the cordon and so
			// the slot stay until it runs a new boot.
			s.fail(v1alpha1.ReasonRebootTimeout, why+"; the reboot may still happen: the node stays cordoned, and keeps its cluster's slot, until it runs a new boot")
			return reconcile.Result{}, nil
		}
		if err := s.clearRebootRequest(ctx); err != nil {
			return reconcile.Result{}, err
		}
		s.escalateOrFail(v1alpha1.ReasonRebootTimeout, why)
		return reconcile.Result{}, nil
	}
	// The detail of a short wait (the node seen NotReady, then Ready on
	// its new boot) is not worth a write each; a long wait's is.
	if waited >= messageRefresh {
		status.Message = fmt.Sprintf("Waiting for the reboot: boot ID %s, Ready=%t, agent acknowledged: %t%s", describeBoot(status.BootIDBefore, current), ready, acked, s.updateWait(rebooted && ready))
	}
	return reconcile.Result{RequeueAfter: timeout - waited}, nil
}

// rebootPending says the agent acknowledged this NodeCycle's reboot request
// and the node still runs the boot recorded before it.
func (s *scope) rebootPending() bool {
	return cycles.RebootPending(s.node, s.nc)
}

func describeBoot(before, current string) string {
	if before == current {
		return fmt.Sprintf("still %q", current)
	}
	return fmt.Sprintf("%q -> %q", before, current)
}

// updateProof says whether the NodeCycle's in-place update, if it has
// one, is proven on the node's current boot (the agent verified its files
// there), or why it failed: the agent could not write the files (and did
// not reboot), or they were not in place on the new boot.
func (s *scope) updateProof(current string) (proven bool, failed string) {
	u := s.nc.Spec.Update
	if u == nil {
		return true, ""
	}
	st, ok := nodeupdate.StatusOf(s.node)
	switch {
	case !ok || st.ID != u.ID:
		return false, ""
	case st.Result == nodeupdate.Failed:
		return false, fmt.Sprintf("In-place update %s not applied: %s", u.ID, st.Message)
	}
	return st.Result == nodeupdate.Verified && st.BootID == current && current != s.nc.Status.BootIDBefore, ""
}

func (s *scope) clearRebootRequest(ctx context.Context) error {
	if _, ok := s.node.Annotations[v1alpha1.AnnotationRebootRequest]; !ok {
		return nil
	}
	if err := nodes.SetAnnotations(ctx, s.workload().Client, s.node, map[string]*string{v1alpha1.AnnotationRebootRequest: nil, v1alpha1.AnnotationRebootSignature: nil, v1alpha1.AnnotationUpdate: nil}); err != nil {
		return fmt.Errorf("removing reboot request from node %s: %w", s.node.Name, err)
	}
	return nil
}

// afterProof goes on from the proof of reboot: to the wait for the node's
// pods and startup taints (spec.waitForPods), then to its post-reboot hooks, then to the
// uncordon.
func (s *scope) afterProof(ctx context.Context) (reconcile.Result, error) {
	if s.nc.Spec.WaitForPods != nil {
		waiting, err := notReadyToServe(ctx, s)
		if err != nil {
			return reconcile.Result{}, err
		}
		if !waiting.none() {
			s.moveTo(v1alpha1.PhaseWaitingForPods, podsMessage(waiting, s.podsTimeout()))
			return reconcile.Result{RequeueAfter: podsPollInterval}, nil
		}
	}
	return s.beforeUncordonHooks()
}

// beforeUncordonHooks goes to the post-reboot hooks while one is held,
// else to the uncordon.
func (s *scope) beforeUncordonHooks() (reconcile.Result, error) {
	if held := nodes.Hooks(s.node, v1alpha1.PrefixPostRebootHook); len(held) > 0 {
		s.moveTo(v1alpha1.PhaseWaitingForPostRebootHooks, hooksMessage(beforeUncordon(&s.nc.Status), held, s.hookTimeout()))
		return reconcile.Result{RequeueAfter: s.hookTimeout()}, nil
	}
	s.moveTo(v1alpha1.PhaseUncordoning, "Node rebooted and Ready; uncordoning")
	return reconcile.Result{}, nil
}

// updateWait tells, in the message of a long wait, that a node back on a
// new boot waits for the agent's check of the update.
func (s *scope) updateWait(back bool) string {
	if u := s.nc.Spec.Update; u != nil && back {
		return fmt.Sprintf(", in-place update %s not verified by the agent yet", u.ID)
	}
	return ""
}
