package nodecycle

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// reboot is the in-place strategy: on the drained node, the agent is asked
// to reboot (Rebooting), and the wait ends when the node runs a new boot
// and is Ready (WaitingForNodeReady).
//
//	Rebooting -> WaitingForNodeReady -> Uncordoning
type reboot struct {
	// agentSelector picks the agent's pods: a reboot is requested only
	// while a Ready one runs on the node. Empty: no check.
	agentSelector labels.Selector
}

func (*reboot) Name() v1alpha1.Strategy { return v1alpha1.StrategyReboot }
func (*reboot) InPlace() bool           { return true }
func (*reboot) Phases() []v1alpha1.Phase {
	return []v1alpha1.Phase{v1alpha1.PhaseRebooting, v1alpha1.PhaseWaitingForNodeReady}
}

func (*reboot) Check(context.Context, *step) (v1alpha1.Reason, error) { return "", nil }

func (*reboot) Start(s *step) {
	s.moveTo(v1alpha1.PhaseRebooting, "Requesting a reboot from the agent")
}

func (*reboot) ConditionReason(p v1alpha1.Phase) v1alpha1.Reason {
	if p == v1alpha1.PhaseRebooting {
		return v1alpha1.ReasonRebootRequested
	}
	return v1alpha1.ReasonWaitingForNodeReady
}

func (st *reboot) Step(ctx context.Context, s *step) (reconcile.Result, error) {
	if s.nc.Status.Phase == v1alpha1.PhaseRebooting {
		return st.requestReboot(ctx, s)
	}
	return waitForNewBoot(ctx, s)
}

// requestReboot records the boot ID, then asks the agent for a reboot. The
// boot ID is saved before the request is made, so the proof of reboot never
// compares against a boot ID read after the reboot.
func (st *reboot) requestReboot(ctx context.Context, s *step) (reconcile.Result, error) {
	status := &s.nc.Status
	if status.RebootRequestID == "" {
		if ready, err := st.agentReady(ctx, s.workload().Reader, s.node.Name); err != nil {
			return reconcile.Result{}, err
		} else if !ready {
			s.escalateOrFail(v1alpha1.ReasonAgentNotReady, fmt.Sprintf("No Ready nodecycle agent pod (%s) runs on the node; an in-place reboot cannot be requested", st.agentSelector))
			return reconcile.Result{}, nil
		}
		status.BootIDBefore = nodes.BootID(s.node)
		// Under nodecycle's own cordon the request names it: the agent
		// carries it out only while that cordon is on the node.
		status.RebootRequestID = string(s.nc.UID)
		if owner := s.node.Annotations[v1alpha1.AnnotationCordonedBy]; owner != "" {
			status.RebootRequestID = owner + "/" + string(s.nc.UID)
		}
		return reconcile.Result{}, nil
	}
	if s.node.Annotations[v1alpha1.AnnotationRebootRequest] != status.RebootRequestID {
		if err := nodes.SetAnnotations(ctx, s.workload().Client, s.node, map[string]*string{v1alpha1.AnnotationRebootRequest: ptr.To(status.RebootRequestID)}); err != nil {
			return reconcile.Result{}, fmt.Errorf("requesting reboot of node %s: %w", s.node.Name, err)
		}
	}
	requested := metav1.NewMicroTime(s.now)
	status.RebootRequestTime = &requested
	s.moveTo(v1alpha1.PhaseWaitingForNodeReady, fmt.Sprintf("Reboot requested; waiting for a boot ID other than %q and Ready=True", status.BootIDBefore))
	s.event(corev1.EventTypeNormal, v1alpha1.ReasonRebootRequested, "Reboot requested from the agent (request %s, boot ID %q)", status.RebootRequestID, status.BootIDBefore)
	return reconcile.Result{RequeueAfter: s.nc.Spec.RebootTimeout.Duration}, nil
}

// agentReady reports whether a Ready agent pod runs on the node (always,
// when no agent selector is configured).
func (st *reboot) agentReady(ctx context.Context, reader client.Reader, node string) (bool, error) {
	if st.agentSelector == nil || st.agentSelector.Empty() {
		return true, nil
	}
	var pods corev1.PodList
	if err := reader.List(ctx, &pods, client.MatchingFields{"spec.nodeName": node}, client.MatchingLabelsSelector{Selector: st.agentSelector}); err != nil {
		return false, fmt.Errorf("listing agent pods on node %s: %w", node, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
	}
	return false, nil
}

// waitForNewBoot is how the wait of every in-place strategy ends: the node
// runs a boot other than the one recorded before and is Ready (the proof of
// reboot), or the reboot timeout passes and the ladder goes on.
func waitForNewBoot(ctx context.Context, s *step) (reconcile.Result, error) {
	status := &s.nc.Status
	current := nodes.BootID(s.node)
	ready := nodes.IsReady(s.node)
	rebooted := current != "" && current != status.BootIDBefore
	if rebooted && ready {
		// The request goes with the uncordon, in one write.
		status.BootIDAfter = current
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonRebootVerified, "Node rebooted: boot ID %q -> %q, Ready", status.BootIDBefore, current)
		return afterProof(ctx, s)
	}
	acked := s.node.Annotations[v1alpha1.AnnotationRebootAck] == status.RebootRequestID
	waited := s.elapsed()
	timeout := s.nc.Spec.RebootTimeout.Duration
	if waited >= timeout {
		why := fmt.Sprintf("Node did not come back within %s after %s: boot ID %s, Ready=%t", timeout, s.currentName(), describeBoot(status.BootIDBefore, current), ready)
		if s.currentName() == v1alpha1.StrategyReboot {
			why += fmt.Sprintf(", agent acknowledged the request: %t", acked)
		}
		if rebootPending(s) && !s.hasNext() {
			// The agent took the request and the node may still go down (a
			// slow shutdown, a long POST): the request, the cordon and so
			// the slot stay until it runs a new boot.
			s.fail(v1alpha1.ReasonRebootTimeout, why+"; the reboot may still happen: the node stays cordoned, and keeps its cluster's slot, until it runs a new boot")
			return reconcile.Result{}, nil
		}
		if err := clearRebootRequest(ctx, s); err != nil {
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
func rebootPending(s *step) bool {
	return cycles.RebootPending(s.node, s.nc)
}

func describeBoot(before, current string) string {
	if before == current {
		return fmt.Sprintf("still %q", current)
	}
	return fmt.Sprintf("%q -> %q", before, current)
}

func clearRebootRequest(ctx context.Context, s *step) error {
	if _, ok := s.node.Annotations[v1alpha1.AnnotationRebootRequest]; !ok {
		return nil
	}
	if err := nodes.SetAnnotations(ctx, s.workload().Client, s.node, map[string]*string{v1alpha1.AnnotationRebootRequest: nil}); err != nil {
		return fmt.Errorf("removing reboot request from node %s: %w", s.node.Name, err)
	}
	return nil
}
