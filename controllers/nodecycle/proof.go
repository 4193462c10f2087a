package nodecycle

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
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
	if rebooted && ready {
		// The request goes with the uncordon, in one write.
		status.BootIDAfter = current
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonRebootVerified, "Node rebooted: boot ID %q -> %q, Ready", status.BootIDBefore, current)
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
		status.Message = fmt.Sprintf("Waiting for the reboot: boot ID %s, Ready=%t, agent acknowledged: %t", describeBoot(status.BootIDBefore, current), ready, acked)
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

func (s *scope) clearRebootRequest(ctx context.Context) error {
	if _, ok := s.node.Annotations[v1alpha1.AnnotationRebootRequest]; !ok {
		return nil
	}
	if err := nodes.SetAnnotations(ctx, s.workload().Client, s.node, map[string]*string{v1alpha1.AnnotationRebootRequest: nil}); err != nil {
		return fmt.Errorf("removing reboot request from node %s: %w", s.node.Name, err)
	}
	return nil
}

// afterProof goes on from the proof of reboot: to the wait for the node's
// pods (spec.waitForPods), then to its post-reboot hooks, then to the
// uncordon.
func (s *scope) afterProof(ctx context.Context) (reconcile.Result, error) {
	if s.nc.Spec.WaitForPods != nil {
		waiting, err := podsNotReady(ctx, s)
		if err != nil {
			return reconcile.Result{}, err
		}
		if len(waiting) > 0 {
			s.moveTo(v1alpha1.PhaseWaitingForPods, podsMessage(waiting, s.hookTimeout()))
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
