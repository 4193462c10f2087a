package nodecycle

import (
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// Hooks are wait points for other controllers, in the style of Cluster
// API's lifecycle hooks. A controller that must act before a node reboots
// (a storage operator moving data away, a database operator moving a
// primary) watches for MaintenanceInProgress=True, puts its own annotation
// pre-reboot.hook.nodecycle.io/<name> on the Node, and removes it when it
// is done; while one is there the drained node is not rebooted or
// power-cycled (WaitingForPreRebootHooks). Likewise
// post-reboot.hook.nodecycle.io/<name> keeps the rebooted node cordoned
// (WaitingForPostRebootHooks). Each wait ends at the NodeCycle's hook
// timeout: before the reboot the NodeCycle fails PreRebootHookTimeout and
// the node is uncordoned, nothing rebooted; after it, the NodeCycle fails
// PostRebootHookTimeout and the node stays cordoned until the hooks are
// released (the node's reconciler then lifts the cordon). A hook on a node
// that is not in maintenance does nothing.

// defaultHookTimeout is the wait of a NodeCycle made before hooks existed.
const defaultHookTimeout = 30 * time.Minute

// hookTimeout is the NodeCycle's limit of each wait for hooks.
func (s *scope) hookTimeout() time.Duration {
	if h := s.nc.Spec.Hooks; h != nil && h.Timeout != nil && h.Timeout.Duration > 0 {
		return h.Timeout.Duration
	}
	return defaultHookTimeout
}

// hookLabels are the labels the cordon puts on the node.
func (s *scope) hookLabels() map[string]string {
	if s.nc.Spec.Hooks == nil {
		return nil
	}
	return s.nc.Spec.Hooks.Labels
}

// beforeReboot and beforeUncordon say where a wait for hooks stands.
const beforeReboot = "Drained; before the reboot"

func beforeUncordon(st *v1alpha1.NodeCycleStatus) string {
	return fmt.Sprintf("Node rebooted (boot ID %q -> %q) and Ready; before the uncordon", st.BootIDBefore, st.BootIDAfter)
}

// hooksMessage says what the NodeCycle waits for.
func hooksMessage(what string, held []string, timeout time.Duration) string {
	return fmt.Sprintf("%s, waiting for hooks: %s (timeout %s)", what, strings.Join(held, ", "), timeout)
}

// preRebootHooks waits, on the drained node, until no pre-reboot hook is
// held, then starts the strategy.
func (r *Reconciler) preRebootHooks(s *scope) (reconcile.Result, error) {
	held := nodes.Hooks(s.node, v1alpha1.PrefixPreRebootHook)
	if len(held) == 0 {
		s.startCurrent()
		return reconcile.Result{}, nil
	}
	return s.waitForHooks(held, v1alpha1.ReasonPreRebootHookTimeout, beforeReboot, "nothing was rebooted; the node is uncordoned")
}

// postRebootHooks waits, on the rebooted node, until no post-reboot hook
// is held, then uncordons it.
func (r *Reconciler) postRebootHooks(s *scope) (reconcile.Result, error) {
	held := nodes.Hooks(s.node, v1alpha1.PrefixPostRebootHook)
	if len(held) == 0 {
		s.moveTo(v1alpha1.PhaseUncordoning, "Post-reboot hooks released; uncordoning")
		return reconcile.Result{}, nil
	}
	return s.waitForHooks(held, v1alpha1.ReasonPostRebootHookTimeout, beforeUncordon(&s.nc.Status), "the node stays cordoned until they are released")
}

// waitForHooks fails the NodeCycle once the hook timeout has passed in
// this phase; until then it names the hooks held and wakes at the timeout
// (a hook released wakes it through its Node's event).
func (s *scope) waitForHooks(held []string, timeoutReason v1alpha1.Reason, what, afterTimeout string) (reconcile.Result, error) {
	timeout, waited := s.hookTimeout(), s.elapsed()
	if waited >= timeout {
		s.fail(timeoutReason, fmt.Sprintf("Hooks still held after %s: %s; %s", timeout, strings.Join(held, ", "), afterTimeout))
		return reconcile.Result{}, nil
	}
	s.nc.Status.Message = hooksMessage(what, held, timeout)
	return reconcile.Result{RequeueAfter: timeout - waited}, nil
}
