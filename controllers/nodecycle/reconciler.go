package nodecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/powersettings"
	"github.com/nodecycle/nodecycle/internal/settings"
	"github.com/nodecycle/nodecycle/power"
)

// Requeue intervals of the waits that no watch event ends.
const (
	drainPollInterval = 2 * time.Second
	slotPollInterval  = 30 * time.Second
	// unreachablePollInterval: a NodeCycle of a cluster that cannot be
	// reached looks again this often (its connection is made again meanwhile).
	unreachablePollInterval = 30 * time.Second
	// gatePollInterval: blocking pods and alerts are not watched, so a
	// blocked NodeCycle looks again this often.
	gatePollInterval = 10 * time.Second
	// agentPollInterval: a NodeCycle waiting for the node's agent looks
	// again this often (a cache read); the first look at a cluster whose
	// pod cache has just started may see no agent yet.
	agentPollInterval = 2 * time.Second
	// conflictRetry: a write that lost to another writer is tried again
	// after this long, on the object read again.
	conflictRetry = 10 * time.Millisecond
)

// Reconciler drives NodeCycles through their phases (see doc.go). Every
// phase's work is persisted in the NodeCycle's status before the next one, so a
// restarted manager resumes where the last one stopped.
type Reconciler struct {
	Client    client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Config    settings.Config
	Metrics   *Metrics
	// Clusters reaches the nodes' clusters (the local one, or Cluster API's).
	Clusters cluster.Clusters
	// Strategies is the table of strategies a ladder may name.
	Strategies Table
	// Requests fills in on-demand requests; nil refuses them.
	Requests Resolver

	// controller receives the Node watches of workload clusters.
	controller controller.Controller

	// admission serialises, per cluster, the decision to take a maintenance
	// slot, which reads from the API server (not the cache) so two
	// NodeCycles of a cluster never both see a free slot. Clusters do not
	// wait for each other: their slots are counted apart.
	admission sync.Map // namespace/cluster -> *sync.Mutex

	// podWatch wakes a draining NodeCycle when a pod of its node goes, and
	// one waiting for its node's pods when one changes.
	podWatch *podWatch

	// serves is what each cluster's discovery said of EvictionRequests
	// (namespace/cluster -> served); responders, the eviction responder
	// last told of each pod of a drain (NodeCycle/pod -> name).
	serves, responders sync.Map

	// saved is the resourceVersion each NodeCycle's last save produced: a
	// reconcile that reads an older one from the cache (an event of its
	// node came first) waits for the cache instead of doing the work again
	// from a stale state and losing its save to a conflict.
	saved sync.Map // types.NamespacedName -> string
}

// New returns a Reconciler with the built-in strategies.
func New(c client.Client, apiReader client.Reader, rec events.EventRecorder, clk clock.PassiveClock, cfg settings.Config, clusters cluster.Clusters, registry *power.Registry, m *Metrics) *Reconciler {
	return &Reconciler{
		Client: c, APIReader: apiReader, Recorder: rec, Clock: clk, Config: cfg, Metrics: m, Clusters: clusters,
		Strategies: DefaultStrategies(cfg, c, &powersettings.Cache{Registry: registry, Secrets: apiReader, SecretsNamespace: cfg.Namespace}),
		podWatch:   newPodWatch(),
	}
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	nc := &v1alpha1.NodeCycle{}
	if err := r.Client.Get(ctx, req.NamespacedName, nc); err != nil {
		if apierrors.IsNotFound(err) {
			r.saved.Delete(req.NamespacedName)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if last, ok := r.saved.Load(req.NamespacedName); ok && olderThan(nc.ResourceVersion, last.(string)) {
		return reconcile.Result{RequeueAfter: conflictRetry}, nil
	}
	if r.podWatch != nil && (!watched(nc.Status.Phase) || !nc.DeletionTimestamp.IsZero()) {
		r.podWatch.stop(req.NamespacedName)
	}
	if nc.Status.Phase.Terminal() {
		if err := r.releaseFinalizers(ctx, nc, nil); err != nil {
			return reconcile.Result{}, err
		}
		if wait, err := r.resumeRemediation(ctx, nc); err != nil || wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, err
		}
		return r.expire(ctx, nc)
	}
	log := logf.FromContext(ctx).WithValues("Node", klog.KRef("", nc.Spec.NodeName), "phase", nc.Status.Phase)
	ctx = logf.IntoContext(ctx, log)
	if nc.Spec.Unresolved() {
		return r.resolve(ctx, nc)
	}

	s := r.newScope(nc)
	target, err := r.Clusters.Target(ctx, nc)
	if err == nil {
		err = r.Clusters.WatchNodes(ctx, nc.Namespace, nc.Spec.ClusterName, "nodecycle-nodes", r.controller, r.nodeEvents(nc.Namespace, nc.Spec.ClusterName))
	}
	if err != nil {
		return r.unreachable(ctx, s, err)
	}
	s.target = target
	if s.node, err = r.readNode(ctx, target, nc.Spec.NodeName); err != nil {
		return reconcile.Result{}, err
	}

	if !nc.DeletionTimestamp.IsZero() {
		return r.deleted(ctx, s)
	}
	result, err := r.work(ctx, s)
	if err != nil {
		// Shown where the operator looks (the reconcile is retried with backoff):
		// work that keeps failing, a missing permission say, is not only in
		// the manager's log. What the failed reconcile changed is not kept.
		s.discard()
		s.nc.Status.Message = fmt.Sprintf("Retrying after an error: %v", err)
		if serr := r.save(ctx, s); serr != nil {
			log.Error(serr, "Saving the error in the NodeCycle's status")
		}
		return reconcile.Result{}, err
	}
	return r.conclude(ctx, s, result)
}

// work does the NodeCycle's phase, and the chained phases it enters. A
// reconcile that enters a chained phase (Cordoning after the slot was
// taken and saved, Draining after the cordon, Uncordoning after the proof
// of reboot, a strategy's: see PhaseSpec) goes on at once: what follows is
// safe to do again after a crash, so the two share one save. Every other
// phase's work is saved before the next one acts.
func (r *Reconciler) work(ctx context.Context, s *scope) (reconcile.Result, error) {
	from := s.nc.Status.Phase
	result, err := r.reconcilePhase(ctx, s)
	for err == nil && result.IsZero() && s.nc.Status.Phase != from && s.chained() {
		from = s.nc.Status.Phase
		result, err = r.reconcilePhase(ctx, s)
	}
	return result, err
}

// conclude saves what the reconcile did, then tells it (Events, the Node's
// condition), stops a drain's pod watch that is no longer needed, and
// releases the finalizer of a phase that no longer holds it.
func (r *Reconciler) conclude(ctx context.Context, s *scope, result reconcile.Result) (reconcile.Result, error) {
	if err := r.withdrawOnLeaving(ctx, s); err != nil {
		return reconcile.Result{}, err // the drain's step is done again
	}
	if err := r.dropUpdateContents(ctx, s); err != nil {
		return reconcile.Result{}, err // the end is reached again
	}
	if err := r.leaving(ctx, s); err != nil {
		return reconcile.Result{}, err // the slot is kept; the work is done again
	}
	if err := r.save(ctx, s); err != nil {
		if apierrors.IsConflict(err) {
			s.publishEvents()
			return reconcile.Result{RequeueAfter: conflictRetry}, nil
		}
		return reconcile.Result{}, err
	}
	r.publish(ctx, s)
	if r.podWatch != nil && !watched(s.nc.Status.Phase) {
		r.podWatch.stop(client.ObjectKeyFromObject(s.nc))
	}
	if err := r.releaseFinalizers(ctx, s.nc, r.finalizersHeld(s)); err != nil {
		return reconcile.Result{}, err
	}
	return result, nil
}

// readNode reads the NodeCycle's node; nil when it does not exist.
func (r *Reconciler) readNode(ctx context.Context, t cluster.Target, name string) (*corev1.Node, error) {
	node := &corev1.Node{}
	if err := t.Workload().Client.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return node, nil
}

// reconcilePhase does one piece of work in the NodeCycle's phase: the phases every
// strategy shares here, the strategy's own phases in its Step.
func (r *Reconciler) reconcilePhase(ctx context.Context, s *scope) (reconcile.Result, error) {
	strategy, ok := s.current()
	if !ok {
		s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidStrategy, fmt.Sprintf("Strategy %q of the ladder is unknown", s.currentName()))
		return reconcile.Result{}, nil
	}
	if s.invalidSpec() {
		return reconcile.Result{}, nil
	}
	// An in-place strategy needs its node throughout; one that replaces the
	// node sees it go.
	if s.node == nil && (enginePhase(s.nc.Status.Phase) || strategy.InPlace()) {
		msg := fmt.Sprintf("Node %s no longer exists", s.nc.Spec.NodeName)
		if note, _ := strategy.Abandon(ctx, s); note != "" {
			msg += "; " + note // a machine left off, say, is not left so
		}
		s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonNodeDeleted, msg)
		return reconcile.Result{}, nil
	}
	switch p := s.nc.Status.Phase; p {
	case "", v1alpha1.PhasePending:
		return r.admit(ctx, s)
	case v1alpha1.PhaseCordoning:
		return r.cordon(ctx, s)
	case v1alpha1.PhaseDraining:
		return r.drain(ctx, s)
	case v1alpha1.PhaseUncordoning:
		return r.uncordon(ctx, s)
	case v1alpha1.PhaseWaitingForPreRebootHooks:
		return r.preRebootHooks(s)
	case v1alpha1.PhaseWaitingForPostRebootHooks:
		return r.postRebootHooks(s)
	case v1alpha1.PhaseWaitingForPods:
		return r.podsReady(ctx, s)
	default:
		if _, known := s.phase(); !known {
			s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonUnknownPhase, fmt.Sprintf("Unknown phase %q for strategy %s", p, strategy.Name()))
			return reconcile.Result{}, nil
		}
		return strategy.Advance(ctx, s)
	}
}

// invalidSpec fails a NodeCycle whose spec cannot be used (stored before
// the CRD checked it): decoded, reported, not acted on. Selectors are
// checked before the NodeCycle starts.
func (s *scope) invalidSpec() bool {
	if err := s.nc.Spec.DurationErr(); err != nil {
		// Stored before the CRD checked it: decoded, reported, not acted on.
		s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidSpec, fmt.Sprintf("The spec cannot be used: %v", err))
		return true
	}
	if sel := s.nc.Spec.Drain.PodSelector; sel != nil && !s.nc.Status.Phase.Active() {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidDrainPodSelector, fmt.Sprintf("spec.drain.podSelector: %v", err))
			return true
		}
	}
	if w := s.nc.Spec.WaitForPods; w != nil && w.PodSelector != nil && !s.nc.Status.Phase.Active() {
		if _, err := metav1.LabelSelectorAsSelector(w.PodSelector); err != nil {
			s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidSpec, fmt.Sprintf("The spec cannot be used: spec.waitForPods.podSelector: %v", err))
			return true
		}
	}
	return false
}

// unreachable waits for the NodeCycle's cluster to be reachable again and
// says so in the NodeCycle; nothing is decided about a node that cannot be
// seen, and an operation under way keeps its slot.
// A NodeCycle of a cluster that was deleted ends: Skipped when it had not
// started, Failed otherwise (what it did went with the cluster).
func (r *Reconciler) unreachable(ctx context.Context, s *scope, cause error) (reconcile.Result, error) {
	s.nc.Status.Message = fmt.Sprintf("Waiting: cluster %s cannot be reached: %v", s.nc.Spec.ClusterName, cause)
	result := reconcile.Result{RequeueAfter: unreachablePollInterval}
	gone, err := r.Clusters.Gone(ctx, s.nc)
	if err != nil {
		return reconcile.Result{}, err
	}
	if gone {
		outcome := v1alpha1.PhaseSkipped
		if s.nc.Status.Phase.Active() {
			outcome = v1alpha1.PhaseFailed
		}
		s.finish(outcome, v1alpha1.ReasonClusterDeleted, fmt.Sprintf("Cluster %s no longer exists", s.nc.Spec.ClusterName))
		result = reconcile.Result{}
	}
	if err := r.save(ctx, s); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: conflictRetry}, nil
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	r.publish(ctx, s)
	return result, nil
}

// expire deletes a finished NodeCycle whose node went with its Machine
// (replaced, or scaled away) once it is older than the configured history
// of gone Machines: the per-node history limit never sees those nodes
// again.
func (r *Reconciler) expire(ctx context.Context, nc *v1alpha1.NodeCycle) (reconcile.Result, error) {
	if nc.Status.CompletionTime == nil {
		return reconcile.Result{}, nil
	}
	gone, err := r.Clusters.MachineGone(ctx, nc)
	if errors.Is(err, cluster.ErrNoMachine) {
		return reconcile.Result{}, nil // kept until the node's history limit prunes it
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if !gone {
		return reconcile.Result{RequeueAfter: r.Config.GoneMachineHistory}, nil // look again then
	}
	if left := nc.Status.CompletionTime.Add(r.Config.GoneMachineHistory).Sub(r.Clock.Now()); left > 0 {
		return reconcile.Result{RequeueAfter: left}, nil
	}
	return reconcile.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, nc, client.Preconditions{UID: &nc.UID}))
}

// chained says the NodeCycle's phase runs right after the reconcile that
// entered it.
func (s *scope) chained() bool {
	p, _ := s.phase()
	return p.Chained
}

// held says the NodeCycle's phase keeps its finalizer.
func (s *scope) held() bool {
	p, _ := s.phase()
	return p.Held
}
