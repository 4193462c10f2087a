package controllers

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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// NodeReconciler opens a NodeCycle for every eligible node of the cluster
// the manager runs in whose RebootRequired condition is True (the local
// mode; MachineReconciler does the same for Cluster API Machines).
type NodeReconciler struct {
	opener
}

// opener is what the Node and Machine reconcilers share: it opens NodeCycles,
// retries failed ones with backoff, and undoes what a finished or vanished
// NodeCycle left on the node (a cordon, a reboot request), which is how a
// crash mid-operation is recovered.
type opener struct {
	// Client and APIReader reach the cluster the NodeCycles live in.
	Client    ctrl.Client
	APIReader ctrl.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Config    Config
}

// scope says where a node's NodeCycles live and how the node is reached.
type scope struct {
	Namespace string
	Cluster   string
	W         Workload
	// Regarding is the object Events about the node are recorded on; nil
	// means the Node itself (only in the cluster the manager runs in).
	Regarding runtime.Object
}

func (sc scope) regarding(node *corev1.Node) runtime.Object {
	if sc.Regarding != nil {
		return sc.Regarding
	}
	return node
}

// NewNodeReconciler returns the local mode's NodeReconciler.
func NewNodeReconciler(c ctrl.Client, apiReader ctrl.Reader, rec events.EventRecorder, clk clock.PassiveClock, cfg Config) *NodeReconciler {
	return &NodeReconciler{opener{Client: c, APIReader: apiReader, Recorder: rec, Clock: clk, Config: cfg}}
}

// Reconcile implements reconcile.Reconciler.
func (r *NodeReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, req.NamespacedName, node); err != nil {
		return reconcile.Result{}, ctrl.IgnoreNotFound(err)
	}
	sc := scope{Namespace: r.Config.Namespace, W: Workload{Client: r.Client, Reader: r.APIReader}}
	cycles, wanted, err := r.settle(ctx, sc, node)
	if err != nil || !wanted {
		return reconcile.Result{}, err
	}
	policy, err := r.policyFor(ctx, sc.Namespace, node)
	if err != nil {
		// Bad or ambiguous policies: nothing is done to the node.
		r.Recorder.Eventf(node, nil, corev1.EventTypeWarning, "PolicyError", "Select", "Reboot required, but nothing is done: %v", err)
		return reconcile.Result{}, nil
	}
	return r.openCycle(ctx, sc, node, cycles, r.Config.cycleSpec(node.Name, policy))
}

// settle does what is due on a node no NodeCycle works on (leftovers, old
// NodeCycles) and says whether it wants a new NodeCycle: it requires a
// reboot and nodecycle may handle it.
func (r *opener) settle(ctx context.Context, sc scope, node *corev1.Node) ([]v1alpha1.NodeCycle, bool, error) {
	cycles, err := cyclesOfNode(ctx, r.Client, sc.Namespace, sc.Cluster, node.Name)
	if err != nil {
		return nil, false, err
	}
	if open := openCycle(cycles); open != nil {
		return nil, false, nil // the NodeCycleReconciler owns the node now
	}
	if err := r.cleanUpLeftovers(ctx, sc, node); err != nil {
		return nil, false, err
	}
	if err := r.pruneHistory(ctx, cycles); err != nil {
		return nil, false, err
	}
	if !nodes.IsConditionTrue(node, v1alpha1.ConditionRebootRequired) {
		return nil, false, nil
	}
	if ok, _, _ := r.Config.Eligibility(node); !ok {
		return nil, false, nil
	}
	return cycles, true, nil
}

// policyFor returns the one NodeCyclePolicy that selects the node, nil when
// none does, and an error when several do or one cannot be evaluated.
func (r *opener) policyFor(ctx context.Context, namespace string, node *corev1.Node) (*v1alpha1.NodeCyclePolicy, error) {
	var list v1alpha1.NodeCyclePolicyList
	if err := r.Client.List(ctx, &list, ctrl.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing NodeCyclePolicies: %w", err)
	}
	var matched []*v1alpha1.NodeCyclePolicy
	for i := range list.Items {
		p := &list.Items[i]
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.NodeSelector)
		if err != nil {
			return nil, fmt.Errorf("NodeCyclePolicy %s has an invalid nodeSelector: %w", p.Name, err)
		}
		if sel.Matches(labels.Set(node.Labels)) {
			matched = append(matched, p)
		}
	}
	switch len(matched) {
	case 0:
		return nil, nil
	case 1:
		return matched[0], nil
	}
	var names []string
	for _, p := range matched {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("the node is selected by %d NodeCyclePolicies (%s); exactly one may select it", len(names), strings.Join(names, ", "))
}

// openCycle creates the next NodeCycle of the node, unless the last one
// failed too recently or just finished and the agent has not yet spoken
// since the reboot.
func (r *opener) openCycle(ctx context.Context, sc scope, node *corev1.Node, cycles []v1alpha1.NodeCycle, spec v1alpha1.NodeCycleSpec) (reconcile.Result, error) {
	attempt := int32(1)
	if len(cycles) > 0 {
		last := &cycles[0]
		wait, blocked := r.waitAfter(node, last)
		if blocked {
			return reconcile.Result{}, nil
		}
		if wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
		if last.Spec.BootID == bootID(node) {
			attempt = last.Spec.Attempt + 1 // the same boot: the next attempt
		}
	}
	spec.ClusterName = sc.Cluster
	spec.Attempt = attempt
	spec.BootID = bootID(node)
	nc := &v1alpha1.NodeCycle{
		ObjectMeta: metav1.ObjectMeta{Name: nodeCycleName(sc.Cluster, node.Name, bootID(node), attempt), Namespace: sc.Namespace},
		Spec:       spec,
	}
	if err := r.Client.Create(ctx, nc); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("creating NodeCycle for node %s: %w", node.Name, err)
	}
	logf.FromContext(ctx).Info("NodeCycle created", "NodeCycle", ctrl.ObjectKeyFromObject(nc), "attempt", attempt)
	r.Recorder.Eventf(sc.regarding(node), nc, corev1.EventTypeNormal, "NodeCycleCreated", "Queued",
		"Reboot required; NodeCycle %s/%s created (attempt %d)", nc.Namespace, nc.Name, attempt)
	return reconcile.Result{}, nil
}

// waitAfter says how long to wait after the node's last NodeCycle before a
// new one; blocked means wait for the node to change.
func (r *opener) waitAfter(node *corev1.Node, last *v1alpha1.NodeCycle) (wait time.Duration, blocked bool) {
	st := last.Status
	switch st.Phase {
	case v1alpha1.PhaseFailed:
		if st.CompletionTime == nil || last.Spec.BootID != bootID(node) {
			return 0, false // the node rebooted meanwhile: a new boot starts afresh
		}
		return st.CompletionTime.Add(r.Config.backoff(last.Spec.Attempt + 1)).Sub(r.Clock.Now()), false
	case v1alpha1.PhaseSucceeded:
		// The condition still says True from before the reboot until the
		// agent on the new boot has checked again; it writes the condition
		// when it starts, so a write after the reboot request is that check.
		c := nodes.Condition(node, v1alpha1.ConditionRebootRequired)
		if st.RebootRequestTime != nil && c != nil && c.LastHeartbeatTime.Time.Before(st.RebootRequestTime.Time) {
			return 0, true
		}
	}
	return 0, false
}

// cleanUpLeftovers undoes what nodecycle left on a node that no NodeCycle is
// working on: a reboot request nobody waits for, and nodecycle's cordon once
// the node is Ready. It reads the NodeCycles from the API server first: the
// cache may not show one created a moment ago.
func (r *opener) cleanUpLeftovers(ctx context.Context, sc scope, node *corev1.Node) error {
	_, request := node.Annotations[v1alpha1.AnnotationRebootRequest]
	_, cordoned := node.Annotations[v1alpha1.AnnotationCordonedBy]
	if !request && !(cordoned && nodes.IsReady(node)) {
		return nil
	}
	var list v1alpha1.NodeCycleList
	if err := r.APIReader.List(ctx, &list, ctrl.InNamespace(sc.Namespace)); err != nil {
		return fmt.Errorf("listing NodeCycles: %w", err)
	}
	for _, nc := range list.Items {
		if nc.Spec.NodeName == node.Name && nc.Spec.ClusterName == sc.Cluster && !nc.Status.Phase.Terminal() {
			return nil
		}
	}
	log := logf.FromContext(ctx)
	if request {
		if err := setAnnotations(ctx, sc.W.Client, node, map[string]*string{v1alpha1.AnnotationRebootRequest: nil}); err != nil {
			return fmt.Errorf("removing stale reboot request from node %s: %w", node.Name, err)
		}
		log.Info("Removed a reboot request no NodeCycle waits for")
	}
	if cordoned && nodes.IsReady(node) {
		if err := uncordon(ctx, sc.W.Client, node); err != nil {
			return fmt.Errorf("uncordoning node %s: %w", node.Name, ctrl.IgnoreNotFound(err))
		}
		log.Info("Lifted a cordon left by nodecycle")
		r.Recorder.Eventf(sc.regarding(node), nil, corev1.EventTypeNormal, "Uncordoned", "Recover",
			"Node is Ready and no NodeCycle works on it; lifted the cordon nodecycle left (%s)", node.Annotations[v1alpha1.AnnotationCordonedBy])
	}
	return nil
}

// pruneHistory deletes the node's oldest finished NodeCycles beyond the history limit.
func (r *opener) pruneHistory(ctx context.Context, cycles []v1alpha1.NodeCycle) error {
	for i := r.Config.HistoryLimit; i < len(cycles); i++ {
		if err := r.Client.Delete(ctx, &cycles[i]); ctrl.IgnoreNotFound(err) != nil {
			return fmt.Errorf("pruning NodeCycle %s: %w", cycles[i].Name, err)
		}
	}
	return nil
}
