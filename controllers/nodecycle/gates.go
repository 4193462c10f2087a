package nodecycle

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/gates"
)

// The gates hold the NodeCycle in Pending outside its maintenance windows,
// while nodecycle or its policy is paused, while its cluster settles after
// the last maintenance, and while a blocking pod runs on the node or a
// blocking alert fires; they say why in the message. A gate that cannot be
// evaluated fails the NodeCycle: nothing was done to the node. Each is an
// admission check (admission.go): hold says the NodeCycle must not go on
// now; wait, when to look again.

// window is the gate of the maintenance windows, which asks no server.
func (r *Reconciler) window(_ context.Context, s *scope) (bool, time.Duration, error) {
	open, next, err := gates.InWindow(s.nc.Spec.MaintenanceWindows, s.now)
	if err != nil {
		s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidMaintenanceWindow, fmt.Sprintf("Policy %s: %v", s.nc.Spec.Policy, err))
		return true, 0, nil
	}
	if !open {
		s.waitFor(v1alpha1.ReasonOutsideMaintenanceWindow, fmt.Sprintf("Outside the maintenance windows; the next opens at %s", next.UTC().Format(time.RFC3339)))
		return true, next.Sub(s.now), nil
	}
	return false, 0, nil
}

// notFrozen holds the NodeCycle inside a freeze of the manager (--freeze)
// or of its policy, read as the policy is now (the NodeCycle's own copy
// when the policy is gone), and tells it once with an Event.
func (r *Reconciler) notFrozen(ctx context.Context, s *scope) (bool, time.Duration, error) {
	freezes := append([]v1alpha1.Freeze(nil), r.Config.Freezes...)
	own := s.nc.Spec.Freezes
	if s.nc.Spec.Policy != "" {
		p := &v1alpha1.NodeCyclePolicy{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.nc.Namespace, Name: s.nc.Spec.Policy}, p)
		if err != nil && !apierrors.IsNotFound(err) {
			return false, 0, fmt.Errorf("reading policy %s: %w", s.nc.Spec.Policy, err)
		}
		if err == nil {
			own = p.Spec.Freezes
		}
	}
	frozen, until, reason, err := gates.Frozen(append(freezes, own...), s.now)
	if err != nil {
		s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidFreeze, fmt.Sprintf("Policy %s: %v", s.nc.Spec.Policy, err))
		return true, 0, nil
	}
	if !frozen {
		return false, 0, nil
	}
	msg := FrozenMessage(until, reason)
	if s.before.Status.Message != msg {
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonFrozen, "%s", msg)
	}
	s.waitFor(v1alpha1.ReasonFrozen, msg)
	return true, until.Sub(s.now), nil
}

// FrozenMessage is what a NodeCycle held by a freeze says.
func FrozenMessage(until time.Time, reason string) string {
	return fmt.Sprintf("Waiting: frozen until %s: %s", until.UTC().Format(time.RFC3339), reason)
}

// notPaused holds the NodeCycle while the annotation nodecycle.io/paused
// is on the manager's Namespace (all of nodecycle) or on the NodeCycle's
// policy. (A Cluster API Cluster's pause is its Target's.) Both are read
// from watches: a pause is honoured as soon as it is seen.
func (r *Reconciler) notPaused(ctx context.Context, s *scope) (bool, time.Duration, error) {
	why, err := r.pausedBy(ctx, s)
	if err != nil || why == "" {
		return err != nil, 0, err
	}
	s.waitFor(v1alpha1.ReasonPaused, "Waiting: paused, "+why)
	return true, slotPollInterval, nil
}

// pausedBy says who paused the NodeCycle's maintenance and why; "" when
// nobody did.
func (r *Reconciler) pausedBy(ctx context.Context, s *scope) (string, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: r.Config.Namespace}, ns); err != nil && !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("reading namespace %s: %w", r.Config.Namespace, err)
	}
	if why, ok := ns.Annotations[v1alpha1.AnnotationPaused]; ok {
		return fmt.Sprintf("namespace %s: %s", r.Config.Namespace, why), nil
	}
	if s.nc.Spec.Policy == "" {
		return "", nil
	}
	p := &v1alpha1.NodeCyclePolicy{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.nc.Namespace, Name: s.nc.Spec.Policy}, p); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if why, ok := p.Annotations[v1alpha1.AnnotationPaused]; ok {
		return fmt.Sprintf("policy %s: %s", p.Name, why), nil
	}
	return "", nil
}

// settled holds a maintenance for the settle time after the last one of
// its cluster ended.
func (r *Reconciler) settled(ctx context.Context, s *scope) (bool, time.Duration, error) {
	settle := s.nc.Spec.SettleTime
	if settle == nil || settle.Duration <= 0 {
		return false, 0, nil
	}
	var list v1alpha1.NodeCycleList
	if err := r.Client.List(ctx, &list, client.InNamespace(s.nc.Namespace)); err != nil {
		return false, 0, fmt.Errorf("listing NodeCycles: %w", err)
	}
	var last *v1alpha1.NodeCycle
	for i, other := range list.Items {
		st := other.Status
		if other.Spec.ClusterName != s.nc.Spec.ClusterName || other.Name == s.nc.Name || st.StartTime == nil || st.CompletionTime == nil ||
			(st.Phase != v1alpha1.PhaseSucceeded && st.Phase != v1alpha1.PhaseFailed) {
			continue
		}
		if last == nil || last.Status.CompletionTime.Before(st.CompletionTime) {
			last = &list.Items[i]
		}
	}
	if last == nil {
		return false, 0, nil
	}
	since := s.now.Sub(last.Status.CompletionTime.Time)
	if since >= settle.Duration {
		return false, 0, nil
	}
	s.waitFor(v1alpha1.ReasonSettling, fmt.Sprintf("Waiting: settling for %s after the maintenance of node %s ended at %s",
		settle.Duration, last.Spec.NodeName, last.Status.CompletionTime.UTC().Format(time.RFC3339)))
	return true, settle.Duration - since, nil
}

// healthyBudgets holds a maintenance while a PodDisruptionBudget of the
// cluster is not healthy (the pods evicted by the last one are not back
// yet), when the NodeCycle asks for it.
func (r *Reconciler) healthyBudgets(ctx context.Context, s *scope) (bool, time.Duration, error) {
	if w := s.nc.Spec.WaitForHealthyPodDisruptionBudgets; w == nil || !*w {
		return false, 0, nil
	}
	var pdbs policyv1.PodDisruptionBudgetList
	if err := s.workload().Reader.List(ctx, &pdbs); err != nil {
		return false, 0, fmt.Errorf("listing PodDisruptionBudgets: %w", err)
	}
	var unhealthy []string
	for _, p := range pdbs.Items {
		if p.Status.CurrentHealthy < p.Status.DesiredHealthy {
			unhealthy = append(unhealthy, fmt.Sprintf("%s/%s (%d of %d healthy)", p.Namespace, p.Name, p.Status.CurrentHealthy, p.Status.DesiredHealthy))
		}
	}
	if len(unhealthy) == 0 {
		return false, 0, nil
	}
	sort.Strings(unhealthy)
	if len(unhealthy) > 5 {
		unhealthy = append(unhealthy[:5], fmt.Sprintf("and %d more", len(unhealthy)-5))
	}
	s.waitFor(v1alpha1.ReasonPodDisruptionBudgetsUnhealthy, "Waiting: PodDisruptionBudgets not healthy yet: "+strings.Join(unhealthy, ", "))
	return true, gatePollInterval, nil
}

// noBlockingAlerts holds a maintenance while an alert of the policy's
// blockingAlerts fires, and while that cannot be checked (fail closed:
// what cannot be checked is not known to be quiet).
func (r *Reconciler) noBlockingAlerts(ctx context.Context, s *scope) (bool, time.Duration, error) {
	alerts := s.nc.Spec.BlockingAlerts
	if alerts == nil {
		return false, 0, nil
	}
	if notAllowed := gates.AlertmanagerAllowed(alerts, s.nc.Namespace, r.Config.Namespace, r.Config.AlertmanagerURLs); notAllowed != nil {
		s.waitFor(v1alpha1.ReasonBlockingAlerts, fmt.Sprintf("Waiting: %v", notAllowed))
		return true, gatePollInterval, nil
	}
	firing, err := gates.BlockingAlerts(ctx, nil, alerts)
	switch {
	case err != nil:
		s.waitFor(v1alpha1.ReasonBlockingAlerts, fmt.Sprintf("Waiting: %v", err))
		return true, gatePollInterval, nil
	case len(firing) > 0:
		s.waitFor(v1alpha1.ReasonBlockingAlerts, "Waiting: blocking alerts are firing: "+strings.Join(firing, ", "))
		return true, gatePollInterval, nil
	}
	return false, 0, nil
}

// noBlockingQueries holds a maintenance while a query of the policy's
// blockingQueries returns series (above its threshold, for its `for`), and
// while one cannot be asked (fail closed, with its own reason).
func (r *Reconciler) noBlockingQueries(ctx context.Context, s *scope) (bool, time.Duration, error) {
	for i := range s.nc.Spec.BlockingQueries {
		q := &s.nc.Spec.BlockingQueries[i]
		field := fmt.Sprintf("blockingQueries[%d].prometheusURL", i)
		if notAllowed := gates.URLAllowed(field, q.PrometheusURL, "--prometheus-urls", s.nc.Namespace, r.Config.Namespace, r.Config.PrometheusURLs); notAllowed != nil {
			s.waitFor(v1alpha1.ReasonQueryUnavailable, fmt.Sprintf("Waiting: %v", notAllowed))
			return true, gatePollInterval, nil
		}
		series, err := gates.BlockingSeries(ctx, nil, q, s.now)
		if err != nil {
			s.waitFor(v1alpha1.ReasonQueryUnavailable, fmt.Sprintf("Waiting: %v", err))
			return true, gatePollInterval, nil
		}
		if len(series) > 0 {
			s.waitFor(v1alpha1.ReasonBlockingQuery, "Waiting: "+queryMessage(q, series))
			return true, gatePollInterval, nil
		}
	}
	return false, 0, nil
}

// queryMessage says which query holds maintenance, and with what values.
func queryMessage(q *v1alpha1.QueryGate, series []gates.Series) string {
	cond := "returns"
	if q.Threshold != "" {
		cond += " above " + q.Threshold
	}
	if q.For != nil && q.For.Duration > 0 {
		cond += " for " + q.For.String()
	}
	shown := make([]string, 0, 6)
	for i, v := range series {
		if i == 5 {
			shown = append(shown, fmt.Sprintf("and %d more", len(series)-5))
			break
		}
		shown = append(shown, v.String())
	}
	return fmt.Sprintf("query %q on %s %s: %s", q.Query, q.PrometheusURL, cond, strings.Join(shown, ", "))
}

// noBlockingPods holds a maintenance while a pod on the node is selected by
// a blocking selector or annotated nodecycle.io/do-not-disrupt=true.
func (r *Reconciler) noBlockingPods(ctx context.Context, s *scope) (bool, time.Duration, error) {
	var pods corev1.PodList
	if err := s.workload().Reader.List(ctx, &pods, client.MatchingFields{"spec.nodeName": s.node.Name}); err != nil {
		return false, 0, fmt.Errorf("listing pods on node %s: %w", s.node.Name, err)
	}
	blocker, why, err := gates.BlockingPod(pods.Items, s.nc.Spec.BlockingPodSelectors)
	if err != nil {
		s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidBlockingPodSelector, fmt.Sprintf("Policy %s: %v", s.nc.Spec.Policy, err))
		return true, 0, nil
	}
	if blocker != "" {
		s.waitFor(v1alpha1.ReasonBlockingPod, fmt.Sprintf("Waiting: pod %s runs on the node (%s)", blocker, why))
		return true, gatePollInterval, nil
	}
	return false, 0, nil
}
