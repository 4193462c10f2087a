package nodecycle

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// podsPollInterval is how often the pods of a rebooted node are looked at
// when no watch of them wakes the NodeCycle.
const podsPollInterval = 5 * time.Second

// defaultPodsTimeout bounds the wait of a spec.waitForPods without a
// timeout (a NodeCycle written before it had one).
const defaultPodsTimeout = 10 * time.Minute

// notServing is what keeps a rebooted node from serving: pods not Ready on
// the new boot and startup taints still on it.
type notServing struct {
	pods, taints []string
}

func (n notServing) none() bool { return len(n.pods) == 0 && len(n.taints) == 0 }

// String says what is waited for.
func (n notServing) String() string {
	var parts []string
	if len(n.pods) > 0 {
		parts = append(parts, "pods to be Ready: "+summary(n.pods))
	}
	if len(n.taints) > 0 {
		parts = append(parts, "startup taints to be removed: "+strings.Join(n.taints, ", "))
	}
	return strings.Join(parts, "; ")
}

// podsReady waits in WaitingForPods until the node can serve, for at most
// spec.waitForPods' timeout; then the NodeCycle fails PodsNotReady (or
// StartupTaintsNotRemoved) and the node is uncordoned (it is Ready; its
// pods' owners are told by the Event; a startup taint keeps pods away
// until its owner removes it).
func (r *Reconciler) podsReady(ctx context.Context, s *scope) (reconcile.Result, error) {
	if r.podWatch != nil {
		r.podWatch.ensure(ctx, s)
	}
	waiting, err := notReadyToServe(ctx, s)
	if err != nil {
		return reconcile.Result{}, err
	}
	if waiting.none() {
		return s.beforeUncordonHooks()
	}
	timeout := s.podsTimeout()
	if s.elapsed() >= timeout {
		reason := v1alpha1.ReasonPodsNotReady
		if len(waiting.pods) == 0 {
			reason = v1alpha1.ReasonStartupTaintsNotRemoved
		}
		s.fail(reason, fmt.Sprintf("The rebooted node still cannot serve after %s: waited for %s; the node is uncordoned", timeout, waiting))
		return reconcile.Result{}, nil
	}
	s.nc.Status.Message = podsMessage(waiting, timeout)
	return reconcile.Result{RequeueAfter: min(podsPollInterval, timeout-s.elapsed())}, nil
}

// podsTimeout is spec.waitForPods' timeout.
func (s *scope) podsTimeout() time.Duration {
	if w := s.nc.Spec.WaitForPods; w != nil && w.Timeout != nil && w.Timeout.Duration > 0 {
		return w.Timeout.Duration
	}
	return defaultPodsTimeout
}

// notReadyToServe says what spec.waitForPods still waits for on the node.
func notReadyToServe(ctx context.Context, s *scope) (notServing, error) {
	pods, err := podsNotReady(ctx, s)
	if err != nil {
		return notServing{}, err
	}
	return notServing{pods: pods, taints: startupTaints(s.node, s.nc.Spec.WaitForPods.StartupTaints, s.nc.Status.StartupTaintsAtStart)}, nil
}

// podsNotReady lists (namespace/name, sorted) the pods of spec.waitForPods
// on the node that are not Ready since the maintenance began: a pod that
// shows Ready from before the reboot has not been seen Ready on the new
// boot yet. A pod that was not Ready when the maintenance began (its Ready
// condition unchanged since) is not waited for: it did not serve before
// either, and a broken DaemonSet must not hold every node it runs on.
func podsNotReady(ctx context.Context, s *scope) ([]string, error) {
	want := s.nc.Spec.WaitForPods
	if !want.DaemonSetPods && want.PodSelector == nil {
		return nil, nil
	}
	sel := labels.Nothing()
	if want.PodSelector != nil {
		var err error
		if sel, err = metav1.LabelSelectorAsSelector(want.PodSelector); err != nil {
			return nil, fmt.Errorf("spec.waitForPods.podSelector: %w", err)
		}
	}
	// From the API server's watch cache (resourceVersion 0), not a
	// consistent read: a consistent pod list right after the node's writes
	// waits for the cache to catch up with etcd and held the next node's
	// admission with it (sentinel -> cordon 34 -> 110 ms in
	// BenchmarkSentinelToCordon). A cache a moment behind can only show a
	// pod as it was before (not yet Ready on this boot: a longer wait, which
	// the pod watch ends); the pods of a DaemonSet are the node's for its
	// lifetime, so none is missing from it.
	var pods corev1.PodList
	if err := s.workload().Reader.List(ctx, &pods, client.MatchingFields{"spec.nodeName": s.node.Name},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}); err != nil {
		return nil, fmt.Errorf("listing pods on node %s: %w", s.node.Name, err)
	}
	var since time.Time
	if s.nc.Status.StartTime != nil {
		since = s.nc.Status.StartTime.Time
	}
	var waiting []string
	for _, p := range pods.Items {
		ref := metav1.GetControllerOf(&p)
		picked := (want.DaemonSetPods && ref != nil && ref.Kind == "DaemonSet") || sel.Matches(labels.Set(p.Labels))
		if !picked || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
			continue
		}
		if !readySince(&p, since) && !notReadyBefore(&p, since) {
			waiting = append(waiting, p.Namespace+"/"+p.Name)
		}
	}
	slices.Sort(waiting)
	return waiting, nil
}

// readySince reports whether the pod is Ready and became so after since.
func readySince(p *corev1.Pod, since time.Time) bool {
	c := nodes.PodReady(p)
	return c != nil && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.Time.Before(since)
}

// notReadyBefore reports whether the pod was not Ready when the maintenance
// began and has not changed since: its Ready condition is not True and
// dates from before since (or it has none and was created before since).
func notReadyBefore(p *corev1.Pod, since time.Time) bool {
	c := nodes.PodReady(p)
	if c == nil {
		return p.CreationTimestamp.Time.Before(since)
	}
	return c.Status != corev1.ConditionTrue && c.LastTransitionTime.Time.Before(since)
}

// startupTaints lists (sorted) the taints of the node whose key is one of
// keys, or starts with one of them that ends in "/", but for those of
// except: the taints that were on the node when the maintenance began (a
// taint the node served with before does not hold it after the reboot;
// in a cluster without a node lifecycle controller, the not-ready taint
// the API server puts on every new Node stays).
func startupTaints(n *corev1.Node, keys, except []string) []string {
	var found []string
	for _, t := range n.Spec.Taints {
		if slices.Contains(except, t.Key) {
			continue
		}
		for _, k := range keys {
			if t.Key == k || (strings.HasSuffix(k, "/") && strings.HasPrefix(t.Key, k)) {
				found = append(found, t.Key)
				break
			}
		}
	}
	slices.Sort(found)
	return slices.Compact(found)
}

func podsMessage(waiting notServing, timeout time.Duration) string {
	return fmt.Sprintf("Node rebooted and Ready; before the uncordon, waiting for %s (timeout %s)", waiting, timeout)
}

// summary names at most five items, and says how many more there are.
func summary(items []string) string {
	if len(items) > 5 {
		return strings.Join(items[:5], ", ") + fmt.Sprintf(" and %d more", len(items)-5)
	}
	return strings.Join(items, ", ")
}
