package nodecycle

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
	"github.com/nodecycle/nodecycle/internal/signing"
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
func (*reboot) Phases() []PhaseSpec {
	return []PhaseSpec{
		// Its first reconcile only records the boot and the request id,
		// which are saved before the request is written.
		{Phase: v1alpha1.PhaseRebooting, Reason: v1alpha1.ReasonRebootRequested, Quiet: true, Chained: true},
		{Phase: v1alpha1.PhaseWaitingForNodeReady, Reason: v1alpha1.ReasonWaitingForNodeReady},
	}
}

func (*reboot) Check(context.Context, *scope) (v1alpha1.Reason, error) { return "", nil }

func (*reboot) Start(s *scope) {
	s.moveTo(v1alpha1.PhaseRebooting, "Requesting a reboot from the agent")
}

// Abandon: a reboot request left on a node that is gone does nothing.
func (*reboot) Abandon(context.Context, *scope) (string, time.Duration) { return "", 0 }

func (st *reboot) Advance(ctx context.Context, s *scope) (reconcile.Result, error) {
	if s.nc.Status.Phase == v1alpha1.PhaseRebooting {
		return st.requestReboot(ctx, s)
	}
	return s.waitForNewBoot(ctx)
}

// requestReboot records the boot ID, then asks the agent for a reboot. The
// boot ID is saved before the request is made, so the proof of reboot never
// compares against a boot ID read after the reboot.
func (st *reboot) requestReboot(ctx context.Context, s *scope) (reconcile.Result, error) {
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
		w := s.workload()
		key, err := requestKey(ctx, w)
		if err != nil {
			return reconcile.Result{}, fmt.Errorf("requesting reboot of node %s: %w", s.node.Name, err)
		}
		req := signing.Request{Node: s.node.Name, ID: status.RebootRequestID}
		set := map[string]*string{v1alpha1.AnnotationRebootRequest: ptr.To(status.RebootRequestID)}
		if u := s.nc.Spec.Update; u != nil {
			// The update rides on the request, in the same write; a status
			// left from an earlier try of the same update goes.
			req.Update = nodeupdate.Encode(u)
			set[v1alpha1.AnnotationUpdate] = ptr.To(req.Update)
			set[v1alpha1.AnnotationUpdateStatus] = nil
		}
		set[v1alpha1.AnnotationRebootSignature] = ptr.To(signing.Sign(key, req, s.now))
		if err := nodes.SetAnnotations(ctx, w.Client, s.node, set); err != nil {
			return reconcile.Result{}, fmt.Errorf("requesting reboot of node %s: %w", s.node.Name, err)
		}
	}
	requested := metav1.NewMicroTime(s.now)
	status.RebootRequestTime = &requested
	s.moveTo(v1alpha1.PhaseWaitingForNodeReady, fmt.Sprintf("Reboot requested; waiting for a boot ID other than %q and Ready=True", status.BootIDBefore))
	s.event(corev1.EventTypeNormal, v1alpha1.ReasonRebootRequested, "Reboot requested from the agent (request %s, boot ID %q)%s", status.RebootRequestID, status.BootIDBefore, updateNote(s.nc.Spec.Update))
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

// updateNote tells, in the reboot request's Event, what update rides on it.
func updateNote(u *v1alpha1.UpdateSpec) string {
	if u == nil {
		return ""
	}
	return fmt.Sprintf(" with in-place update %s (%d files, from %s)", u.ID, len(u.Files), u.Source)
}
