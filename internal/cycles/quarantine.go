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

// Quarantined reports whether the node's MaintenanceInProgress condition
// says it is quarantined.
func Quarantined(node *corev1.Node) bool {
	c := nodes.Condition(node, v1alpha1.ConditionMaintenanceInProgress)
	return c != nil && c.Reason == string(v1alpha1.ReasonQuarantined)
}

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

// quarantine marks a node in a reboot loop; the condition changes (and the
// Warning Event is recorded) once.
func (r *Opener) quarantine(ctx context.Context, sc Scope, node *corev1.Node, loop []string) error {
	if Quarantined(node) {
		return nil
	}
	msg := fmt.Sprintf("RebootRequired is True again right after each of the last %d verified reboots (NodeCycles %s); "+
		"not rebooting it again. Fix what asks for the reboot; deleting NodeCycle %s/%s allows one more attempt",
		len(loop), strings.Join(loop, ", "), sc.Namespace, loop[0])
	if err := nodes.SetMaintenanceCondition(ctx, sc.W.Client, node, corev1.ConditionFalse, v1alpha1.ReasonQuarantined, msg, r.Clock.Now()); err != nil {
		return err
	}
	sc.Events.Eventf(node, nil, corev1.EventTypeWarning, v1alpha1.ReasonQuarantined, "Quarantine", "%s", msg)
	return nil
}

// liftQuarantine clears the quarantine of a node that left its loop.
func (r *Opener) liftQuarantine(ctx context.Context, sc Scope, node *corev1.Node, why string) error {
	if !Quarantined(node) {
		return nil
	}
	msg := "Quarantine lifted: " + why
	if err := nodes.SetMaintenanceCondition(ctx, sc.W.Client, node, corev1.ConditionFalse, v1alpha1.ReasonQuarantineLifted, msg, r.Clock.Now()); err != nil {
		return err
	}
	sc.Events.Eventf(node, nil, corev1.EventTypeNormal, v1alpha1.ReasonQuarantineLifted, "Quarantine", "%s", msg)
	return nil
}
