package cycles

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/settings"
)

// Opener is what the Node and Machine reconcilers share: it opens
// NodeCycles, retries failed ones with backoff, and undoes what a finished
// or vanished NodeCycle left on the node (a cordon, a reboot request), which
// is how a crash mid-operation is recovered.
type Opener struct {
	// Client and APIReader reach the cluster the NodeCycles live in.
	Client    client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Config    settings.Config
}

// Scope says where a node's NodeCycles live, how the node is reached and
// where Events about it are recorded.
type Scope struct {
	Namespace string
	Cluster   string
	W         cluster.Workload
	Events    cluster.Events
}

// Settle does what is due on a node no NodeCycle works on (leftovers, old
// NodeCycles) and says whether it wants a new NodeCycle: it requires a
// reboot and nodecycle may handle it. cycles are the node's, newest first.
func (r *Opener) Settle(ctx context.Context, sc Scope, node *corev1.Node) (cycles []v1alpha1.NodeCycle, wanted bool, err error) {
	cycles, err = OfNode(ctx, r.Client, sc.Namespace, sc.Cluster, node.Name)
	if err != nil {
		return nil, false, err
	}
	if open := Open(cycles); open != nil {
		return nil, false, nil // the NodeCycle reconciler owns the node now
	}
	if err := r.cleanUpLeftovers(ctx, sc, node, cycles); err != nil {
		return nil, false, err
	}
	if err := r.pruneHistory(ctx, cycles); err != nil {
		return nil, false, err
	}
	if !Requested(node) {
		return nil, false, r.release(ctx, sc, node, "the node no longer asks for a reboot on its current boot")
	}
	if ok, _, _ := r.Config.Eligibility(node); !ok {
		return nil, false, nil
	}
	if loop := r.rebootLoop(node, cycles); loop != nil {
		return nil, false, r.quarantine(ctx, sc, node, loop)
	}
	if failed := skippedBy(node, cycles); failed != nil {
		return nil, false, r.hold(ctx, sc, node, v1alpha1.ReasonNodeSkipped, fmt.Sprintf(
			"The drain could not finish (NodeCycle %s/%s: %s) and its drain.failure is SkipNode: not tried again on this boot. "+
				"Deleting that NodeCycle allows one more attempt", failed.Namespace, failed.Name, failed.Status.Reason))
	}
	why := "the NodeCycles of the loop were deleted"
	if Skipped(node) {
		why = "the NodeCycle whose drain could not finish was deleted, or the node runs a new boot"
	}
	if err := r.release(ctx, sc, node, why); err != nil {
		return nil, false, err
	}
	return cycles, true, nil
}

// PolicyFor returns the one NodeCyclePolicy of the namespace that selects
// the node, nil when none does, and an error when several do or one cannot
// be evaluated.
func (r *Opener) PolicyFor(ctx context.Context, namespace string, node *corev1.Node) (*v1alpha1.NodeCyclePolicy, error) {
	var list v1alpha1.NodeCyclePolicyList
	if err := r.Client.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing NodeCyclePolicies: %w", err)
	}
	var matched []string
	var policy *v1alpha1.NodeCyclePolicy
	for i := range list.Items {
		p := &list.Items[i]
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.NodeSelector)
		if err != nil {
			return nil, fmt.Errorf("NodeCyclePolicy %s has an invalid nodeSelector: %w", p.Name, err)
		}
		if sel.Matches(labels.Set(node.Labels)) {
			matched, policy = append(matched, p.Name), p
		}
	}
	if len(matched) > 1 {
		sort.Strings(matched)
		return nil, fmt.Errorf("the node is selected by %d NodeCyclePolicies (%s); exactly one may select it", len(matched), strings.Join(matched, ", "))
	}
	if policy != nil {
		if err := policy.Spec.DurationErr(); err != nil {
			return nil, fmt.Errorf("NodeCyclePolicy %s cannot be used: %w", policy.Name, err)
		}
	}
	return policy, nil
}

// OpenCycle creates the next NodeCycle of the node, unless the last one
// failed on this boot too recently.
func (r *Opener) OpenCycle(ctx context.Context, sc Scope, node *corev1.Node, cycles []v1alpha1.NodeCycle, spec v1alpha1.NodeCycleSpec) (reconcile.Result, error) {
	attempt := int32(1)
	if len(cycles) > 0 {
		last := &cycles[0]
		if wait := r.backoff(node, last); wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
		if last.Spec.BootID == nodes.BootID(node) {
			attempt = last.Spec.Attempt + 1 // the same boot: the next attempt
		}
	}
	spec.ClusterName = sc.Cluster
	spec.Attempt = attempt
	spec.BootID = nodes.BootID(node)
	nc := &v1alpha1.NodeCycle{
		ObjectMeta: metav1.ObjectMeta{Name: Name(sc.Cluster, node.Name, spec.BootID, attempt), Namespace: sc.Namespace},
		Spec:       spec,
	}
	if p, ok := node.Annotations[v1alpha1.AnnotationPriority]; ok {
		// The node's place in the queue of its cluster (an operator can
		// still change it on the NodeCycle).
		nc.Annotations = map[string]string{v1alpha1.AnnotationPriority: p}
	}
	if err := r.Client.Create(ctx, nc); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("creating NodeCycle for node %s: %w", node.Name, err)
	}
	logf.FromContext(ctx).Info("NodeCycle created", "NodeCycle", client.ObjectKeyFromObject(nc), "attempt", attempt)
	sc.Events.Eventf(node, nc, corev1.EventTypeNormal, v1alpha1.ReasonNodeCycleCreated, "Queued",
		"Reboot required; NodeCycle %s/%s created (attempt %d)", nc.Namespace, nc.Name, attempt)
	return reconcile.Result{}, nil
}

// backoff is how long to wait after the node's last NodeCycle failed on
// the boot it still runs. A Succeeded NodeCycle needs no wait: the need
// was checked by the agent on the new boot (Requested).
func (r *Opener) backoff(node *corev1.Node, last *v1alpha1.NodeCycle) time.Duration {
	st := last.Status
	if st.Phase != v1alpha1.PhaseFailed || st.CompletionTime == nil || last.Spec.BootID != nodes.BootID(node) {
		return 0
	}
	return st.CompletionTime.Add(r.Config.Backoff(last.Spec.Attempt + 1)).Sub(r.Clock.Now())
}

// cleanUpLeftovers undoes what nodecycle left on a node that no NodeCycle is
// working on: a reboot request nobody waits for, lifecycle conditions still
// True (a NodeCycle deleted while it waited or worked), and nodecycle's cordon once
// the node is Ready; but not while the last NodeCycle's reboot is pending
// (acknowledged, the node still on its old boot). It reads the NodeCycles
// from the API server first: the cache may not show one created a moment
// ago. history is the node's NodeCycles, newest first.
func (r *Opener) cleanUpLeftovers(ctx context.Context, sc Scope, node *corev1.Node, history []v1alpha1.NodeCycle) error {
	_, request := node.Annotations[v1alpha1.AnnotationRebootRequest]
	_, cordoned := node.Annotations[v1alpha1.AnnotationCordonedBy]
	tainted := nodes.HasWaitingTaint(node)
	stale := nodes.InMaintenance(node)
	if !request && !tainted && !stale && (!cordoned || !nodes.IsReady(node)) {
		return nil
	}
	if len(history) > 0 && RebootPending(node, &history[0]) {
		return nil
	}
	live, err := InClusterLive(ctx, r.APIReader, sc.Namespace, sc.Cluster)
	if err != nil {
		return err
	}
	for _, nc := range live {
		if nc.Spec.NodeName == node.Name && !nc.Status.Phase.Terminal() {
			return nil
		}
	}
	log := logf.FromContext(ctx)
	if tainted {
		if err := nodes.SetWaitingTaint(ctx, sc.W.Client, node, false); err != nil {
			return fmt.Errorf("taking the waiting taint off node %s: %w", node.Name, err)
		}
		log.Info("Took off the waiting taint no NodeCycle waits for")
	}
	if stale {
		want := make([]corev1.NodeCondition, len(nodes.LifecycleConditions))
		for i, t := range nodes.LifecycleConditions {
			want[i] = corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, Reason: string(v1alpha1.ReasonNoMaintenance),
				Message: "No NodeCycle works on the node"}
		}
		if err := nodes.SetConditions(ctx, sc.W.Client, node, want, r.Clock.Now()); err != nil {
			return err
		}
		log.Info("Cleared the maintenance conditions no NodeCycle stands behind")
	}
	if request {
		if err := nodes.SetAnnotations(ctx, sc.W.Client, node, map[string]*string{v1alpha1.AnnotationRebootRequest: nil, v1alpha1.AnnotationRebootSignature: nil}); err != nil {
			return fmt.Errorf("removing stale reboot request from node %s: %w", node.Name, err)
		}
		log.Info("Removed a reboot request no NodeCycle waits for")
	}
	// Post-reboot hooks still held (their wait timed out): the cordon stays
	// until they are released.
	// A cordon left on purpose after a drain that could not finish
	// (LeaveCordoned) stays while it stands for something.
	if cordoned && nodes.IsReady(node) && len(nodes.Hooks(node, v1alpha1.PrefixPostRebootHook)) == 0 && !leftCordoned(node, history) {
		owner := node.Annotations[v1alpha1.AnnotationCordonedBy]
		if err := nodes.Uncordon(ctx, sc.W.Client, node); err != nil {
			return fmt.Errorf("uncordoning node %s: %w", node.Name, client.IgnoreNotFound(err))
		}
		log.Info("Lifted a cordon left by nodecycle")
		sc.Events.Eventf(node, nil, corev1.EventTypeNormal, v1alpha1.ReasonUncordoned, "Recover",
			"Node is Ready and no NodeCycle works on it; lifted the cordon nodecycle left (%s)", owner)
	}
	return nil
}

// pruneHistory deletes the node's oldest finished NodeCycles beyond the history limit.
func (r *Opener) pruneHistory(ctx context.Context, cycles []v1alpha1.NodeCycle) error {
	for i := r.Config.HistoryLimit; i < len(cycles); i++ {
		if err := r.Client.Delete(ctx, &cycles[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("pruning NodeCycle %s: %w", cycles[i].Name, err)
		}
	}
	return nil
}
