package cycles

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// Requested says whether the node asks for a reboot of the boot it runs:
// RebootRequired is True and the agent wrote it on this boot. Right after a
// reboot the condition still shows what the agent saw before it, until the
// agent on the new boot has checked again.
func Requested(node *corev1.Node) bool {
	return nodes.IsConditionTrue(node, v1alpha1.ConditionRebootRequired) &&
		node.Annotations[v1alpha1.AnnotationCheckedBoot] != "" &&
		node.Annotations[v1alpha1.AnnotationCheckedBoot] == nodes.BootID(node)
}

// Held returns why the node is held out of maintenance on its current
// boot (MaintenanceInProgress reason Quarantined or NodeSkipped), or ""
// when it is not.
func Held(node *corev1.Node) v1alpha1.Reason {
	c := nodes.Condition(node, v1alpha1.ConditionMaintenanceInProgress)
	if c == nil {
		return ""
	}
	switch r := v1alpha1.Reason(c.Reason); r {
	case v1alpha1.ReasonQuarantined, v1alpha1.ReasonNodeSkipped:
		return r
	}
	return ""
}

// Quarantined reports whether the node's MaintenanceInProgress condition
// says it is quarantined.
func Quarantined(node *corev1.Node) bool { return Held(node) == v1alpha1.ReasonQuarantined }

// Skipped reports whether the node's MaintenanceInProgress condition says
// it is skipped after a drain that could not finish.
func Skipped(node *corev1.Node) bool { return Held(node) == v1alpha1.ReasonNodeSkipped }

// rebootLoop returns the node's last NodeCycles (newest first) when it
// needs a reboot again right after each of its last QuarantineAfter
// verified reboots: each Succeeded NodeCycle produced the boot the next
// one (or the current need) was for, within LoopWindow of its completion.
// Only reboots the node asked for count: one that a person requested, an
// in-place update or a remediation ends the chain (a sentinel that comes
// back right after an update's reboot is the node's first ask). A node
// already quarantined stays so while the chain holds, however long ago
// its last reboot was. history is newest first.
func (r *Opener) rebootLoop(node *corev1.Node, history []v1alpha1.NodeCycle) []string {
	boot, seen := nodes.BootID(node), r.Clock.Now()
	var loop []string
	for i := range history {
		nc := &history[i]
		st := nc.Status
		if st.Phase != v1alpha1.PhaseSucceeded || st.BootIDAfter != boot || st.CompletionTime == nil ||
			nc.Spec.Request != nil || nc.Spec.Update != nil || nc.Spec.Remediation != "" {
			break
		}
		if seen.Sub(st.CompletionTime.Time) > r.Config.LoopWindow && (i > 0 || !Quarantined(node)) {
			break
		}
		loop = append(loop, nc.Name)
		boot, seen = nc.Spec.BootID, nc.CreationTimestamp.Time
	}
	if len(loop) < r.Config.QuarantineAfter {
		return nil
	}
	return loop[:r.Config.QuarantineAfter]
}

// quarantine marks a node in a reboot loop.
func (r *Opener) quarantine(ctx context.Context, sc Scope, node *corev1.Node, loop []string) error {
	return r.hold(ctx, sc, node, v1alpha1.ReasonQuarantined, fmt.Sprintf("RebootRequired is True again right after each of the last %d verified reboots (NodeCycles %s); "+
		"not rebooting it again. Fix what asks for the reboot; deleting NodeCycle %s/%s allows one more attempt",
		len(loop), strings.Join(loop, ", "), sc.Namespace, loop[0]))
}

// hold marks the node held out of maintenance for reason; the condition
// changes (and the Warning Event is recorded) once.
func (r *Opener) hold(ctx context.Context, sc Scope, node *corev1.Node, reason v1alpha1.Reason, msg string) error {
	if Held(node) == reason {
		return nil
	}
	if err := nodes.SetMaintenanceCondition(ctx, sc.W.Client, node, corev1.ConditionFalse, reason, msg, r.Clock.Now()); err != nil {
		return err
	}
	sc.Events.Eventf(node, nil, corev1.EventTypeWarning, reason, "Hold", "%s", msg)
	return nil
}

// release clears the hold of a node that no longer warrants it.
func (r *Opener) release(ctx context.Context, sc Scope, node *corev1.Node, why string) error {
	lifted, what := v1alpha1.ReasonQuarantineLifted, "Quarantine"
	switch Held(node) {
	case "":
		return nil
	case v1alpha1.ReasonNodeSkipped:
		lifted, what = v1alpha1.ReasonNodeSkipLifted, "Skip"
	}
	msg := what + " lifted: " + why
	if err := nodes.SetMaintenanceCondition(ctx, sc.W.Client, node, corev1.ConditionFalse, lifted, msg, r.Clock.Now()); err != nil {
		return err
	}
	sc.Events.Eventf(node, nil, corev1.EventTypeNormal, lifted, "Hold", "%s", msg)
	return nil
}

// DrainFailed says whether the NodeCycle failed because its drain could
// not finish.
func DrainFailed(nc *v1alpha1.NodeCycle) bool {
	st := nc.Status
	return (st.Phase == v1alpha1.PhaseFailed || st.Outcome == v1alpha1.PhaseFailed) &&
		(st.Reason == v1alpha1.ReasonDrainTimeout || st.Reason == v1alpha1.ReasonDrainRefused)
}

// skippedBy returns the node's last NodeCycle when its drain could not
// finish on the boot the node still runs and its drain.failure is SkipNode.
// history is newest first.
func skippedBy(node *corev1.Node, history []v1alpha1.NodeCycle) *v1alpha1.NodeCycle {
	if len(history) == 0 {
		return nil
	}
	last := &history[0]
	if last.Spec.Drain.Failure != v1alpha1.DrainFailureSkipNode || !DrainFailed(last) || last.Spec.BootID != nodes.BootID(node) {
		return nil
	}
	return last
}

// leftCordoned says whether the node's cordon is the one its last
// NodeCycle left on purpose (drain.failure LeaveCordoned) and still
// stands for: the node runs the same boot and still asks for a reboot.
func leftCordoned(node *corev1.Node, history []v1alpha1.NodeCycle) bool {
	if len(history) == 0 {
		return false
	}
	last := &history[0]
	return last.Spec.Drain.Failure == v1alpha1.DrainFailureLeaveCordoned && DrainFailed(last) &&
		last.Spec.BootID == nodes.BootID(node) && Requested(node) &&
		node.Annotations[v1alpha1.AnnotationCordonedBy] == Owner(last)
}
