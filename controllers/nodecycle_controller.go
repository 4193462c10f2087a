package controllers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/annotations"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/drain"
	"github.com/nodecycle/nodecycle/internal/gates"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/providers"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// Requeue intervals of the waits that no watch event ends.
const (
	drainPollInterval = 2 * time.Second
	slotPollInterval  = 30 * time.Second
	// unreachablePollInterval: a NodeCycle of a cluster that cannot be
	// reached looks again this often (the ClusterCache reconnects meanwhile).
	unreachablePollInterval = 30 * time.Second
	// gatePollInterval: blocking pods and alerts are not watched, so a
	// blocked NodeCycle looks again this often.
	gatePollInterval = 10 * time.Second
)

// NodeCycleReconciler drives NodeCycles: Pending -> Cordoning -> Draining ->
// Rebooting -> WaitingForNodeReady -> Uncordoning -> Succeeded | Failed.
// Every step is persisted in the NodeCycle's status before the next one, so
// a restarted manager resumes where the last one stopped.
type NodeCycleReconciler struct {
	Client    ctrl.Client
	APIReader ctrl.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Config    Config
	Metrics   *Metrics
	Providers *providers.Registry
	// Clusters reaches the nodes' clusters (the local one, or Cluster API's).
	Clusters Clusters

	// controller receives the Node watches of workload clusters.
	controller controller.Controller

	// admission serialises, per cluster, the decision to take a maintenance
	// slot, which reads from the API server (not the cache) so two
	// NodeCycles of a cluster never both see a free slot. Clusters do not
	// wait for each other: their slots are counted apart.
	admission sync.Map // namespace/cluster -> *sync.Mutex

	providersMu sync.Mutex
	built       map[string]builtProvider // by policy (namespace/name)
}

// step is the work of one reconcile on one NodeCycle.
type step struct {
	nc     *v1alpha1.NodeCycle
	node   *corev1.Node
	w      Workload
	now    time.Time
	events []pendingEvent
	// saved is set when the step already persisted the status itself.
	saved bool
}

type pendingEvent struct{ eventType, reason, message string }

func (s *step) event(eventType, reason, format string, args ...any) {
	s.events = append(s.events, pendingEvent{eventType, reason, fmt.Sprintf(format, args...)})
}

// Reconcile implements reconcile.Reconciler.
func (r *NodeCycleReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	nc := &v1alpha1.NodeCycle{}
	if err := r.Client.Get(ctx, req.NamespacedName, nc); err != nil {
		return reconcile.Result{}, ctrl.IgnoreNotFound(err)
	}
	if nc.Status.Phase.Terminal() {
		return r.expire(ctx, nc)
	}
	log := logf.FromContext(ctx).WithValues("Node", klog.KRef("", nc.Spec.NodeName), "phase", nc.Status.Phase)
	ctx = logf.IntoContext(ctx, log)

	w, err := r.Clusters.Workload(ctx, nc.Namespace, nc.Spec.ClusterName)
	if err == nil {
		err = r.Clusters.WatchNodes(ctx, nc.Namespace, nc.Spec.ClusterName, "nodecycle-nodes", r.controller, r.nodeEvents(nc.Namespace, nc.Spec.ClusterName))
	}
	if err != nil {
		return r.unreachable(ctx, nc, err)
	}
	s := &step{nc: nc, now: r.Clock.Now(), w: w}
	s.node = &corev1.Node{}
	if err := w.Client.Get(ctx, types.NamespacedName{Name: nc.Spec.NodeName}, s.node); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		s.node = nil
	}

	before := nc.DeepCopy()
	result, err := r.reconcilePhase(ctx, s)
	if err != nil {
		// Shown where the operator looks (the step is retried with backoff):
		// a step that keeps failing, a missing permission say, is not only in
		// the manager's log.
		if msg := fmt.Sprintf("Retrying after an error: %v", err); !s.saved && before.Status.Message != msg {
			failed := before.DeepCopy()
			failed.Status.Message = msg
			if perr := r.Client.Status().Patch(ctx, failed, ctrl.MergeFrom(before)); perr != nil {
				log.Error(perr, "Saving the error in the NodeCycle's status")
			}
		}
		return reconcile.Result{}, err
	}
	if !s.saved && !equality.Semantic.DeepEqual(before.Status, nc.Status) {
		patch := ctrl.MergeFromWithOptions(before, ctrl.MergeFromWithOptimisticLock{})
		if err := r.Client.Status().Patch(ctx, nc, patch); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{Requeue: true}, nil
			}
			return reconcile.Result{}, fmt.Errorf("saving status of NodeCycle %s: %w", req, err)
		}
		if before.Status.Phase != nc.Status.Phase {
			log.Info("Phase changed", "from", before.Status.Phase, "to", nc.Status.Phase, "message", nc.Status.Message)
		}
	}
	r.publish(ctx, s)
	return result, nil
}

// unreachable waits for the NodeCycle's cluster to be reachable again and
// says so in the NodeCycle; nothing is decided about a node that cannot be
// seen, and an operation under way keeps its slot.
// A NodeCycle of a Cluster that was deleted ends: Skipped when it had not
// started, Failed otherwise (what it did went with the cluster).
func (r *NodeCycleReconciler) unreachable(ctx context.Context, nc *v1alpha1.NodeCycle, cause error) (reconcile.Result, error) {
	before := nc.DeepCopy()
	nc.Status.Message = fmt.Sprintf("Waiting: cluster %s cannot be reached: %v", nc.Spec.ClusterName, cause)
	var result reconcile.Result
	if gone, err := r.clusterGone(ctx, nc); err != nil {
		return reconcile.Result{}, err
	} else if gone {
		s := &step{nc: nc, now: r.Clock.Now()}
		outcome := v1alpha1.PhaseSkipped
		if nc.Status.Phase.Active() {
			outcome = v1alpha1.PhaseFailed
		}
		r.finish(s, outcome, "ClusterDeleted", fmt.Sprintf("Cluster %s no longer exists", nc.Spec.ClusterName))
	} else {
		result.RequeueAfter = unreachablePollInterval
	}
	if !equality.Semantic.DeepEqual(before.Status, nc.Status) {
		if err := r.Client.Status().Patch(ctx, nc, ctrl.MergeFrom(before)); err != nil {
			return reconcile.Result{}, ctrl.IgnoreNotFound(err)
		}
	}
	return result, nil
}

// clusterGone reports whether the NodeCycle names a Cluster API Cluster
// that does not exist.
func (r *NodeCycleReconciler) clusterGone(ctx context.Context, nc *v1alpha1.NodeCycle) (bool, error) {
	if nc.Spec.ClusterName == "" || nc.Spec.MachineName == "" {
		return false, nil
	}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: nc.Namespace, Name: nc.Spec.ClusterName}, &clusterv1.Cluster{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// regarding is the object Events about the NodeCycle's node are recorded
// on: the Node, or in Cluster API mode its Machine (Events live in the
// management cluster, where the Node is not).
func regarding(s *step) runtime.Object {
	if s.nc.Spec.MachineName != "" {
		return &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: s.nc.Namespace, Name: s.nc.Spec.MachineName}}
	}
	return s.node
}

// publish tells the operator, after the step is saved: Events on the Node
// (or its Machine) and the Node's MaintenanceInProgress condition.
func (r *NodeCycleReconciler) publish(ctx context.Context, s *step) {
	for _, e := range s.events {
		if s.node != nil || s.nc.Spec.MachineName != "" {
			r.Recorder.Eventf(regarding(s), s.nc, e.eventType, e.reason, string(s.nc.Status.Phase), "%s", e.message)
		}
	}
	if s.node == nil {
		return
	}
	var status corev1.ConditionStatus
	reason := ""
	switch p := s.nc.Status.Phase; {
	case p.Active():
		status, reason = corev1.ConditionTrue, conditionReason(p)
	case p == v1alpha1.PhaseSucceeded:
		status, reason = corev1.ConditionFalse, v1alpha1.ReasonMaintenanceCompleted
	case p == v1alpha1.PhaseFailed:
		status, reason = corev1.ConditionFalse, v1alpha1.ReasonMaintenanceFailed
	case p == v1alpha1.PhaseSkipped:
		status, reason = corev1.ConditionFalse, v1alpha1.ReasonMaintenanceSkipped
	default:
		status, reason = corev1.ConditionFalse, "MaintenancePending"
	}
	if err := setMaintenanceCondition(ctx, s.w.Client, s.node, status, reason, s.nc.Status.Message, s.now); err != nil {
		logf.FromContext(ctx).Error(err, "Updating node condition")
	}
}

func conditionReason(p v1alpha1.Phase) string {
	switch p {
	case v1alpha1.PhaseRebooting:
		return "RebootRequested"
	case v1alpha1.PhasePoweringOff, v1alpha1.PhasePoweringOn:
		return "PowerCycling"
	}
	return string(p)
}

func (r *NodeCycleReconciler) reconcilePhase(ctx context.Context, s *step) (reconcile.Result, error) {
	switch s.nc.Status.Phase {
	case v1alpha1.PhaseDeletingMachine, v1alpha1.PhaseWaitingForReplacement:
		// The node goes away with its Machine.
	default:
		if s.node == nil {
			r.finish(s, v1alpha1.PhaseFailed, "NodeDeleted", fmt.Sprintf("Node %s no longer exists", s.nc.Spec.NodeName))
			return reconcile.Result{}, nil
		}
	}
	switch s.nc.Status.Phase {
	case "", v1alpha1.PhasePending:
		return r.admit(ctx, s)
	case v1alpha1.PhaseCordoning:
		return r.cordon(ctx, s)
	case v1alpha1.PhaseDraining:
		return r.drain(ctx, s)
	case v1alpha1.PhaseRebooting:
		return r.requestReboot(ctx, s)
	case v1alpha1.PhasePoweringOff:
		return r.powerOff(ctx, s)
	case v1alpha1.PhasePoweringOn:
		return r.powerOn(ctx, s)
	case v1alpha1.PhaseWaitingForNodeReady:
		return r.waitForReboot(ctx, s)
	case v1alpha1.PhaseUncordoning:
		return r.uncordon(ctx, s)
	case v1alpha1.PhaseDeletingMachine:
		return r.deleteMachine(ctx, s)
	case v1alpha1.PhaseWaitingForReplacement:
		return r.waitForReplacement(ctx, s)
	default:
		r.finish(s, v1alpha1.PhaseFailed, "UnknownPhase", fmt.Sprintf("Unknown phase %q", s.nc.Status.Phase))
		return reconcile.Result{}, nil
	}
}

// moveTo enters phase p: it records how long the previous phase took.
func (r *NodeCycleReconciler) moveTo(s *step, p v1alpha1.Phase, message string) {
	st := &s.nc.Status
	if st.PhaseStartTime != nil && st.Phase.Active() {
		st.PhaseDurations = append(st.PhaseDurations, v1alpha1.PhaseDuration{
			Phase: st.Phase, Duration: metav1.Duration{Duration: s.now.Sub(st.PhaseStartTime.Time).Round(time.Millisecond)},
		})
	}
	st.Phase = p
	st.Message = message
	now := metav1.NewMicroTime(s.now)
	st.PhaseStartTime = &now
}

// fail records why the operation failed and sends it to Uncordoning, which
// undoes nodecycle's cordon before the NodeCycle ends as Failed.
func (r *NodeCycleReconciler) fail(s *step, reason, message string) {
	s.nc.Status.Outcome = v1alpha1.PhaseFailed
	s.nc.Status.Reason = reason
	s.event(corev1.EventTypeWarning, reason, "%s", message)
	r.moveTo(s, v1alpha1.PhaseUncordoning, message)
}

// finish ends the NodeCycle in a terminal phase.
func (r *NodeCycleReconciler) finish(s *step, p v1alpha1.Phase, reason, message string) {
	st := &s.nc.Status
	startedActive := st.StartTime != nil
	r.moveTo(s, p, message)
	if reason != "" {
		st.Reason = reason
	}
	now := metav1.NewMicroTime(s.now)
	st.CompletionTime = &now
	strategy := string(currentStrategy(s.nc))
	r.Metrics.operations.WithLabelValues(strategy, string(p)).Inc()
	if startedActive {
		r.Metrics.duration.WithLabelValues(strategy, string(p)).Observe(s.now.Sub(st.StartTime.Time).Seconds())
	}
	switch p {
	case v1alpha1.PhaseSucceeded:
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonMaintenanceCompleted, "%s", message)
	case v1alpha1.PhaseFailed:
		s.event(corev1.EventTypeWarning, v1alpha1.ReasonMaintenanceFailed, "%s", message)
	default:
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonMaintenanceSkipped, "%s", message)
	}
}

// admit takes a maintenance slot of the cluster for the NodeCycle, or waits.
func (r *NodeCycleReconciler) admit(ctx context.Context, s *step) (reconcile.Result, error) {
	if ok, reason, msg := r.Config.Eligibility(s.node); !ok {
		r.finish(s, v1alpha1.PhaseSkipped, reason, msg)
		return reconcile.Result{}, nil
	}
	if slices.Contains(s.nc.Spec.Strategies, v1alpha1.StrategyReplace) && s.nc.Spec.MachineName == "" {
		r.finish(s, v1alpha1.PhaseFailed, "NotAClusterAPINode", fmt.Sprintf("Strategy replace needs a Cluster API Machine; node %s has none (replace works only with --cluster-api)", s.nc.Spec.NodeName))
		return reconcile.Result{}, nil
	}
	if !nodes.IsConditionTrue(s.node, v1alpha1.ConditionRebootRequired) {
		r.finish(s, v1alpha1.PhaseSkipped, "RebootNoLongerRequired", fmt.Sprintf("Node no longer has %s=True", v1alpha1.ConditionRebootRequired))
		return reconcile.Result{}, nil
	}
	if s.nc.Status.Phase == "" {
		s.nc.Status.Phase = v1alpha1.PhasePending
		s.nc.Status.Strategy = currentStrategy(s.nc) // shown while it waits
	}
	if !nodes.IsReady(s.node) {
		s.nc.Status.Message = "Waiting for the node to be Ready before starting"
		return reconcile.Result{RequeueAfter: slotPollInterval}, nil
	}
	if paused, err := r.clusterPaused(ctx, s.nc); err != nil || paused {
		s.nc.Status.Message = fmt.Sprintf("Waiting: Cluster %s or Machine %s is paused", s.nc.Spec.ClusterName, s.nc.Spec.MachineName)
		return reconcile.Result{RequeueAfter: slotPollInterval}, err
	}
	if hold, wait, err := r.gate(ctx, s); err != nil || hold {
		return reconcile.Result{RequeueAfter: wait}, err
	}

	// The cache answers "no slot" cheaply for the many waiting NodeCycles;
	// only a free slot is confirmed against the API server.
	if taken, err := r.slotsTaken(ctx, r.Client, s); err != nil || taken >= r.Config.MaxConcurrent {
		r.waitForSlot(s, taken)
		return reconcile.Result{RequeueAfter: slotPollInterval}, err
	}
	// Provider calls are made before the admission lock is taken: a slow BMC
	// must not hold up other NodeCycles' admission.
	if err := r.preflight(ctx, s); err != nil {
		// Nothing was done to the node; it is retried with backoff.
		r.finish(s, v1alpha1.PhaseFailed, "ProviderError", err.Error())
		return reconcile.Result{}, nil
	}
	lock, _ := r.admission.LoadOrStore(s.nc.Namespace+"/"+s.nc.Spec.ClusterName, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	taken, err := r.slotsTaken(ctx, r.APIReader, s)
	if err != nil {
		return reconcile.Result{}, err
	}
	if taken >= r.Config.MaxConcurrent {
		r.waitForSlot(s, taken)
		return reconcile.Result{RequeueAfter: slotPollInterval}, nil
	}
	now := metav1.NewMicroTime(s.now)
	s.nc.Status.StartTime = &now
	r.moveTo(s, v1alpha1.PhaseCordoning, "Cordoning the node")
	s.event(corev1.EventTypeNormal, "MaintenanceStarted", "Maintenance started (strategy %s, attempt %d)", strategyLadder(s.nc.Spec.Strategies), s.nc.Spec.Attempt)
	return reconcile.Result{Requeue: true}, r.saveNow(ctx, s)
}

// saveNow persists the status while the admission lock is held, so the next
// admission's live read sees the slot taken.
func (r *NodeCycleReconciler) saveNow(ctx context.Context, s *step) error {
	latest := &v1alpha1.NodeCycle{}
	if err := r.APIReader.Get(ctx, ctrl.ObjectKeyFromObject(s.nc), latest); err != nil {
		return err
	}
	if latest.Status.Phase.Active() || latest.Status.Phase.Terminal() {
		return fmt.Errorf("NodeCycle %s moved to %s meanwhile", s.nc.Name, latest.Status.Phase)
	}
	before := latest.DeepCopy()
	latest.Status = s.nc.Status
	if err := r.Client.Status().Patch(ctx, latest, ctrl.MergeFromWithOptions(before, ctrl.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("taking maintenance slot for NodeCycle %s: %w", s.nc.Name, err)
	}
	s.nc.ObjectMeta = latest.ObjectMeta
	s.saved = true
	return nil
}

// waitForSlot says, without naming the nodes that hold the slots: a message
// naming them would change, and be written for every waiting node, with
// every node that goes through maintenance.
func (r *NodeCycleReconciler) waitForSlot(s *step, taken int) {
	s.nc.Status.Message = fmt.Sprintf("Waiting for a maintenance slot (%d of %d taken; kubectl get nodecycles shows which)", taken, r.Config.MaxConcurrent)
}

// slotsTaken counts the nodes of the NodeCycle's cluster that hold a
// maintenance slot: those of active NodeCycles (read through reader) and
// those still cordoned by nodecycle after a failure. A control-plane node
// needs the whole cluster to itself: while one is in maintenance every slot
// counts as taken, and it waits until no other node holds one.
func (r *NodeCycleReconciler) slotsTaken(ctx context.Context, reader ctrl.Reader, s *step) (int, error) {
	nc := s.nc
	var list v1alpha1.NodeCycleList
	if err := reader.List(ctx, &list, ctrl.InNamespace(nc.Namespace)); err != nil {
		return 0, fmt.Errorf("listing NodeCycles: %w", err)
	}
	busy := map[string]bool{}
	clusterOf := map[string]string{}
	controlPlane := false
	for _, other := range list.Items {
		clusterOf[other.Name] = other.Spec.ClusterName
		if other.Spec.ClusterName == nc.Spec.ClusterName && other.Status.Phase.Active() {
			busy[other.Spec.NodeName] = true
			controlPlane = controlPlane || other.Spec.ControlPlane
		}
	}
	var cordoned corev1.NodeList
	if err := s.w.Client.List(ctx, &cordoned, ctrl.MatchingFields{indexCordonedBy: indexYes}); err != nil {
		return 0, fmt.Errorf("listing nodes cordoned by nodecycle: %w", err)
	}
	for _, n := range cordoned.Items {
		ns, owner, _ := strings.Cut(n.Annotations[v1alpha1.AnnotationCordonedBy], "/")
		if cluster, known := clusterOf[owner]; n.Name == nc.Spec.NodeName || ns != nc.Namespace || (known && cluster != nc.Spec.ClusterName) {
			continue
		}
		busy[n.Name] = true
	}
	if len(busy) > 0 && (controlPlane || nc.Spec.ControlPlane) {
		return max(len(busy), r.Config.MaxConcurrent), nil
	}
	return len(busy), nil
}

// cordon marks the node unschedulable, and marks the cordon as nodecycle's
// so that only nodecycle's own cordons are ever lifted.
func (r *NodeCycleReconciler) cordon(ctx context.Context, s *step) (reconcile.Result, error) {
	owner := s.nc.Namespace + "/" + s.nc.Name
	if !slices.Equal(s.nc.Spec.Strategies, []v1alpha1.Strategy{v1alpha1.StrategyReplace}) {
		if err := r.pauseRemediation(ctx, s); err != nil {
			return reconcile.Result{}, err
		}
	}
	switch {
	case s.node.Annotations[v1alpha1.AnnotationCordonedBy] == owner:
		// done before a restart
	case s.node.Spec.Unschedulable && s.node.Annotations[v1alpha1.AnnotationCordonedBy] == "":
		s.event(corev1.EventTypeNormal, "AlreadyCordoned", "Node was already cordoned by someone else; it will stay cordoned afterwards")
	default:
		patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q,"annotations":{%q:%q}},"spec":{"unschedulable":true}}`,
			s.node.ResourceVersion, v1alpha1.AnnotationCordonedBy, owner)
		if err := s.w.Client.Patch(ctx, s.node, ctrl.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{Requeue: true}, nil
			}
			return reconcile.Result{}, fmt.Errorf("cordoning node %s: %w", s.node.Name, err)
		}
		s.event(corev1.EventTypeNormal, "Cordoned", "Node cordoned by nodecycle")
	}
	if currentStrategy(s.nc) == v1alpha1.StrategyReplace {
		r.startStrategy(s) // Cluster API drains the Machine it deletes
		return reconcile.Result{Requeue: true}, nil
	}
	r.moveTo(s, v1alpha1.PhaseDraining, "Draining the node")
	s.event(corev1.EventTypeNormal, "Draining", "Draining the node (timeout %s)", s.nc.Spec.Drain.Timeout.Duration)
	return reconcile.Result{Requeue: true}, nil
}

// drain makes one non-blocking drain step and requeues until the node is
// empty or the drain timeout passes.
func (r *NodeCycleReconciler) drain(ctx context.Context, s *step) (reconcile.Result, error) {
	d := drain.Drainer{Reader: s.w.Reader, Writer: s.w.Client}
	res, err := d.Step(ctx, s.node.Name, s.nc.Spec.Drain)
	if err != nil {
		return reconcile.Result{}, err
	}
	for _, p := range res.Waiting {
		if p.Reason == drain.ReasonEvicted {
			s.event(corev1.EventTypeNormal, "Evicted", "Evicted pod %s", p.Pod)
		}
	}
	elapsed := s.now.Sub(s.nc.Status.PhaseStartTime.Time)
	if len(res.Refused) > 0 {
		r.fail(s, "DrainRefused", fmt.Sprintf("Drain cannot finish, pods that the drain settings forbid evicting: %s", res.Summary(5)))
		return reconcile.Result{Requeue: true}, nil
	}
	if res.Done() {
		r.Metrics.drainDuration.Observe(elapsed.Seconds())
		s.event(corev1.EventTypeNormal, "Drained", "Node drained in %s", elapsed.Round(time.Second))
		r.startStrategy(s)
		return reconcile.Result{Requeue: true}, nil
	}
	timeout := s.nc.Spec.Drain.Timeout.Duration
	if elapsed >= timeout {
		r.fail(s, "DrainTimeout", fmt.Sprintf("Drain did not finish within %s; %d pods still on the node: %s", timeout, len(res.Waiting), res.Summary(5)))
		return reconcile.Result{Requeue: true}, nil
	}
	s.nc.Status.Message = fmt.Sprintf("Draining: %d pods still on the node: %s", len(res.Waiting), res.Summary(5))
	return reconcile.Result{RequeueAfter: min(drainPollInterval, timeout-elapsed)}, nil
}

// requestReboot records the boot ID, then asks the agent for a reboot. The
// boot ID is saved before the request is made, so the proof of reboot never
// compares against a boot ID read after the reboot.
func (r *NodeCycleReconciler) requestReboot(ctx context.Context, s *step) (reconcile.Result, error) {
	st := &s.nc.Status
	if st.RebootRequestID == "" {
		if ready, err := r.agentReady(ctx, s.w.Reader, s.node.Name); err != nil {
			return reconcile.Result{}, err
		} else if !ready {
			r.escalateOrFail(s, "AgentNotReady", fmt.Sprintf("No Ready nodecycle agent pod (%s) runs on the node; an in-place reboot cannot be requested", r.Config.AgentSelector))
			return reconcile.Result{Requeue: true}, nil
		}
		st.BootIDBefore = bootID(s.node)
		st.RebootRequestID = string(s.nc.UID)
		return reconcile.Result{Requeue: true}, nil
	}
	if s.node.Annotations[v1alpha1.AnnotationRebootRequest] != st.RebootRequestID {
		if err := setAnnotations(ctx, s.w.Client, s.node, map[string]*string{v1alpha1.AnnotationRebootRequest: nodes.Ptr(st.RebootRequestID)}); err != nil {
			return reconcile.Result{}, fmt.Errorf("requesting reboot of node %s: %w", s.node.Name, err)
		}
	}
	requested := metav1.NewMicroTime(s.now)
	st.RebootRequestTime = &requested
	r.moveTo(s, v1alpha1.PhaseWaitingForNodeReady, fmt.Sprintf("Reboot requested; waiting for a boot ID other than %q and Ready=True", st.BootIDBefore))
	s.event(corev1.EventTypeNormal, "RebootRequested", "Reboot requested from the agent (request %s, boot ID %q)", st.RebootRequestID, st.BootIDBefore)
	return reconcile.Result{RequeueAfter: s.nc.Spec.RebootTimeout.Duration}, nil
}

// waitForReboot finishes when the node runs a new boot and is Ready.
func (r *NodeCycleReconciler) waitForReboot(ctx context.Context, s *step) (reconcile.Result, error) {
	st := &s.nc.Status
	current := bootID(s.node)
	ready := nodes.IsReady(s.node)
	rebooted := current != "" && current != st.BootIDBefore
	if rebooted && ready {
		if err := r.clearRebootRequest(ctx, s); err != nil {
			return reconcile.Result{}, err
		}
		st.BootIDAfter = current
		r.moveTo(s, v1alpha1.PhaseUncordoning, "Node rebooted and Ready; uncordoning")
		s.event(corev1.EventTypeNormal, "RebootVerified", "Node rebooted: boot ID %q -> %q, Ready", st.BootIDBefore, current)
		return reconcile.Result{Requeue: true}, nil
	}
	acked := s.node.Annotations[v1alpha1.AnnotationRebootAck] == st.RebootRequestID
	waited := s.now.Sub(st.PhaseStartTime.Time)
	timeout := s.nc.Spec.RebootTimeout.Duration
	if waited >= timeout {
		if err := r.clearRebootRequest(ctx, s); err != nil {
			return reconcile.Result{}, err
		}
		why := fmt.Sprintf("Node did not come back within %s after %s: boot ID %s, Ready=%t", timeout, currentStrategy(s.nc), describeBoot(st.BootIDBefore, current), ready)
		if currentStrategy(s.nc) == v1alpha1.StrategyReboot {
			why += fmt.Sprintf(", agent acknowledged the request: %t", acked)
		}
		r.escalateOrFail(s, "RebootTimeout", why)
		return reconcile.Result{Requeue: true}, nil
	}
	st.Message = fmt.Sprintf("Waiting for the reboot: boot ID %s, Ready=%t, agent acknowledged: %t", describeBoot(st.BootIDBefore, current), ready, acked)
	return reconcile.Result{RequeueAfter: timeout - waited}, nil
}

func describeBoot(before, current string) string {
	if before == current {
		return fmt.Sprintf("still %q", current)
	}
	return fmt.Sprintf("%q -> %q", before, current)
}

func (r *NodeCycleReconciler) clearRebootRequest(ctx context.Context, s *step) error {
	if _, ok := s.node.Annotations[v1alpha1.AnnotationRebootRequest]; !ok {
		return nil
	}
	if err := setAnnotations(ctx, s.w.Client, s.node, map[string]*string{v1alpha1.AnnotationRebootRequest: nil}); err != nil {
		return fmt.Errorf("removing reboot request from node %s: %w", s.node.Name, err)
	}
	return nil
}

// uncordon lifts nodecycle's cordon when the node is Ready, then ends the
// NodeCycle. A node that is not Ready after a failure stays cordoned; the
// NodeReconciler lifts the cordon once it is Ready again.
func (r *NodeCycleReconciler) uncordon(ctx context.Context, s *step) (reconcile.Result, error) {
	outcome := s.nc.Status.Outcome
	if outcome == "" {
		outcome = v1alpha1.PhaseSucceeded
	}
	message := s.nc.Status.Message
	if outcome == v1alpha1.PhaseSucceeded {
		message = fmt.Sprintf("Node rebooted (boot ID %q -> %q) and returned to service", s.nc.Status.BootIDBefore, s.nc.Status.BootIDAfter)
	}
	_, ours := s.node.Annotations[v1alpha1.AnnotationCordonedBy]
	switch {
	case ours && nodes.IsReady(s.node):
		if err := uncordon(ctx, s.w.Client, s.node); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{Requeue: true}, nil
			}
			return reconcile.Result{}, fmt.Errorf("uncordoning node %s: %w", s.node.Name, err)
		}
		s.event(corev1.EventTypeNormal, "Uncordoned", "Node uncordoned")
	case ours:
		message += "; the node is not Ready and stays cordoned until it is"
	case s.node.Spec.Unschedulable:
		message += "; the node was cordoned before maintenance and stays cordoned"
	}
	if err := r.resumeRemediation(ctx, s); err != nil {
		return reconcile.Result{}, err
	}
	r.finish(s, outcome, "", message)
	return reconcile.Result{}, nil
}

// escalateOrFail runs the ladder's next strategy on the drained node, or
// fails the NodeCycle when there is none.
func (r *NodeCycleReconciler) escalateOrFail(s *step, reason, why string) {
	if next, ok := nextStrategy(s.nc); ok {
		s.event(corev1.EventTypeWarning, "Escalating", "%s; escalating to %s", why, next)
		s.nc.Status.Strategy = next
		r.startStrategy(s)
		return
	}
	r.fail(s, reason, why)
}

// startStrategy enters the first phase of the current strategy on a
// drained node.
func (r *NodeCycleReconciler) startStrategy(s *step) {
	switch currentStrategy(s.nc) {
	case v1alpha1.StrategyPowerCycle:
		s.nc.Status.PowerOffMode = ""
		r.moveTo(s, v1alpha1.PhasePoweringOff, "Powering the machine off")
	case v1alpha1.StrategyReplace:
		r.moveTo(s, v1alpha1.PhaseDeletingMachine, fmt.Sprintf("Deleting Machine %s", s.nc.Spec.MachineName))
	default:
		r.moveTo(s, v1alpha1.PhaseRebooting, "Requesting a reboot from the agent")
	}
}

func currentStrategy(nc *v1alpha1.NodeCycle) v1alpha1.Strategy {
	if nc.Status.Strategy != "" {
		return nc.Status.Strategy
	}
	if len(nc.Spec.Strategies) > 0 {
		return nc.Spec.Strategies[0]
	}
	return v1alpha1.StrategyReboot
}

// nextStrategy is the ladder's step after the current one.
func nextStrategy(nc *v1alpha1.NodeCycle) (v1alpha1.Strategy, bool) {
	cur := currentStrategy(nc)
	for i, st := range nc.Spec.Strategies {
		if st == cur && i+1 < len(nc.Spec.Strategies) {
			return nc.Spec.Strategies[i+1], true
		}
	}
	return "", false
}

func strategyLadder(l []v1alpha1.Strategy) string {
	parts := make([]string, len(l))
	for i, s := range l {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}

func microTime(t time.Time) *metav1.MicroTime {
	m := metav1.NewMicroTime(t)
	return &m
}

// gate holds the NodeCycle in Pending outside its maintenance windows and
// while a blocking pod runs on the node; it says why in the message. A gate
// that cannot be evaluated fails the NodeCycle: nothing was done to the node.
// hold says the NodeCycle must not go on now; wait, when to look again.
func (r *NodeCycleReconciler) gate(ctx context.Context, s *step) (hold bool, wait time.Duration, err error) {
	g := s.nc.Spec.Gates
	open, next, err := gates.InWindow(g.MaintenanceWindows, s.now)
	if err != nil {
		r.finish(s, v1alpha1.PhaseFailed, "InvalidMaintenanceWindow", fmt.Sprintf("Policy %s: %v", s.nc.Spec.Policy, err))
		return true, 0, nil
	}
	if !open {
		s.nc.Status.Message = fmt.Sprintf("Outside the maintenance windows; the next opens at %s", next.UTC().Format(time.RFC3339))
		return true, next.Sub(s.now), nil
	}
	if g.BlockingAlerts != nil {
		firing, err := gates.BlockingAlerts(ctx, http.DefaultClient, g.BlockingAlerts)
		switch {
		case err != nil:
			// Fail closed: what cannot be checked is not known to be quiet.
			s.nc.Status.Message = fmt.Sprintf("Waiting: %v", err)
			return true, gatePollInterval, nil
		case len(firing) > 0:
			s.nc.Status.Message = fmt.Sprintf("Waiting: blocking alerts are firing: %s", strings.Join(firing, ", "))
			return true, gatePollInterval, nil
		}
	}
	if len(g.BlockingPodSelectors) == 0 {
		return false, 0, nil
	}
	var pods corev1.PodList
	if err := s.w.Reader.List(ctx, &pods, ctrl.MatchingFields{"spec.nodeName": s.node.Name}); err != nil {
		return true, 0, fmt.Errorf("listing pods on node %s: %w", s.node.Name, err)
	}
	blocker, err := gates.BlockingPod(pods.Items, g.BlockingPodSelectors)
	if err != nil {
		r.finish(s, v1alpha1.PhaseFailed, "InvalidBlockingPodSelector", fmt.Sprintf("Policy %s: %v", s.nc.Spec.Policy, err))
		return true, 0, nil
	}
	if blocker != "" {
		s.nc.Status.Message = fmt.Sprintf("Waiting: pod %s matches the policy's blockingPodSelectors", blocker)
		return true, gatePollInterval, nil
	}
	return false, 0, nil
}

// agentReady reports whether a Ready agent pod runs on the node (always,
// when no agent selector is configured).
func (r *NodeCycleReconciler) agentReady(ctx context.Context, reader ctrl.Reader, node string) (bool, error) {
	if r.Config.AgentSelector == nil || r.Config.AgentSelector.Empty() {
		return true, nil
	}
	var pods corev1.PodList
	if err := reader.List(ctx, &pods, ctrl.MatchingFields{"spec.nodeName": node}, ctrl.MatchingLabelsSelector{Selector: r.Config.AgentSelector}); err != nil {
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

// expire deletes a finished NodeCycle of a Machine that no longer exists
// (replaced, or scaled away) once it is older than the configured history
// of gone Machines: the per-node history limit never sees those nodes
// again.
func (r *NodeCycleReconciler) expire(ctx context.Context, nc *v1alpha1.NodeCycle) (reconcile.Result, error) {
	if nc.Spec.MachineName == "" || nc.Status.CompletionTime == nil {
		return reconcile.Result{}, nil
	}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: nc.Namespace, Name: nc.Spec.MachineName}, &clusterv1.Machine{})
	if err == nil {
		return reconcile.Result{RequeueAfter: r.Config.GoneMachineHistory}, nil // look again then
	}
	if !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	if left := nc.Status.CompletionTime.Add(r.Config.GoneMachineHistory).Sub(r.Clock.Now()); left > 0 {
		return reconcile.Result{RequeueAfter: left}, nil
	}
	return reconcile.Result{}, ctrl.IgnoreNotFound(r.Client.Delete(ctx, nc, ctrl.Preconditions{UID: &nc.UID}))
}

// clusterPaused reports whether Cluster API is paused for the NodeCycle's
// Cluster or Machine: no new operation starts then (one under way finishes).
func (r *NodeCycleReconciler) clusterPaused(ctx context.Context, nc *v1alpha1.NodeCycle) (bool, error) {
	if nc.Spec.MachineName == "" {
		return false, nil
	}
	cluster, m := &clusterv1.Cluster{}, &clusterv1.Machine{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: nc.Namespace, Name: nc.Spec.ClusterName}, cluster); err != nil {
		return false, ctrl.IgnoreNotFound(err)
	}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: nc.Namespace, Name: nc.Spec.MachineName}, m); err != nil {
		return false, ctrl.IgnoreNotFound(err)
	}
	return annotations.IsPaused(cluster, m), nil
}
