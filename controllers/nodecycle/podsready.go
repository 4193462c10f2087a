package nodecycle

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// podsPollInterval is how often the pods of a rebooted node are looked at:
// the NodeCycle controller does not watch pods.
const podsPollInterval = 5 * time.Second

// podsReady waits in WaitingForPods until the node's pods are Ready, for
// at most the hook timeout; then the NodeCycle fails PodsNotReady and the
// node is uncordoned (it is Ready; its pods' owners are told by the Event).
func (r *Reconciler) podsReady(ctx context.Context, s *scope) (reconcile.Result, error) {
	waiting, err := podsNotReady(ctx, s)
	if err != nil {
		return reconcile.Result{}, err
	}
	if len(waiting) == 0 {
		return s.beforeUncordonHooks()
	}
	timeout := s.hookTimeout()
	if s.elapsed() >= timeout {
		s.fail(v1alpha1.ReasonPodsNotReady, fmt.Sprintf("Pods on the rebooted node still not Ready after %s: %s; the node is uncordoned", timeout, summary(waiting)))
		return reconcile.Result{}, nil
	}
	s.nc.Status.Message = podsMessage(waiting, timeout)
	return reconcile.Result{RequeueAfter: min(podsPollInterval, timeout-s.elapsed())}, nil
}

// podsNotReady lists (namespace/name, sorted) the pods of spec.waitForPods
// on the node that are not Ready since the maintenance began: a pod that
// shows Ready from before the reboot has not been seen Ready on the new
// boot yet.
func podsNotReady(ctx context.Context, s *scope) ([]string, error) {
	want := s.nc.Spec.WaitForPods
	sel := labels.Nothing()
	if want.PodSelector != nil {
		var err error
		if sel, err = metav1.LabelSelectorAsSelector(want.PodSelector); err != nil {
			return nil, fmt.Errorf("spec.waitForPods.podSelector: %w", err)
		}
	}
	var pods corev1.PodList
	if err := s.workload().Reader.List(ctx, &pods, client.MatchingFields{"spec.nodeName": s.node.Name}); err != nil {
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
		if !readySince(&p, since) {
			waiting = append(waiting, p.Namespace+"/"+p.Name)
		}
	}
	return waiting, nil
}

// readySince reports whether the pod is Ready and became so after since.
func readySince(p *corev1.Pod, since time.Time) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue && !c.LastTransitionTime.Time.Before(since)
		}
	}
	return false
}

func podsMessage(waiting []string, timeout time.Duration) string {
	return fmt.Sprintf("Node rebooted and Ready; before the uncordon, waiting for pods to be Ready: %s (timeout %s)", summary(waiting), timeout)
}

// summary names at most five pods.
func summary(pods []string) string {
	if len(pods) > 5 {
		return strings.Join(pods[:5], ", ") + fmt.Sprintf(" and %d more", len(pods)-5)
	}
	return strings.Join(pods, ", ")
}
