package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/gates"
	"github.com/nodecycle/nodecycle/internal/powersettings"
	"github.com/nodecycle/nodecycle/power"
)

// Reconciler checks NodeCyclePolicies and reports on each, in its
// Valid condition and in a Warning Event, what is wrong: a selector that
// does not parse, power-cycle without provider settings, a provider that
// refuses its settings, a missing or incomplete credentials Secret.
type Reconciler struct {
	Client    client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	Providers *power.Registry
	// Namespace is the manager's: credentials Secrets are read there.
	Namespace string
	// AlertmanagerURLs are the Alertmanagers other namespaces may name.
	AlertmanagerURLs []string
	// PrometheusURLs are the Prometheus query APIs other namespaces may name.
	PrometheusURLs []string
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	p := &v1alpha1.NodeCyclePolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	before := p.DeepCopy()
	cond := metav1.Condition{Type: v1alpha1.ConditionValid, Status: metav1.ConditionTrue, Reason: string(v1alpha1.ReasonValid), Message: "The policy can be used", ObservedGeneration: p.Generation}
	if err := r.validate(ctx, p); err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, string(v1alpha1.ReasonInvalid), err.Error()
	}
	meta.SetStatusCondition(&p.Status.Conditions, cond)
	if err := r.Client.Status().Patch(ctx, p, client.MergeFrom(before)); err != nil {
		if !apierrors.IsInvalid(err) {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
		// A policy stored before the CRD checked what it does now: the API
		// server refuses any write to it, its status too. The Event is
		// what is left to say it.
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonInvalidPolicy), "Validate",
			"%s (the status cannot be written either: fix or re-create the policy)", cond.Message)
		return reconcile.Result{RequeueAfter: policyRecheckInterval}, nil
	}
	if cond.Status == metav1.ConditionTrue {
		return reconcile.Result{}, nil
	}
	if old := meta.FindStatusCondition(before.Status.Conditions, v1alpha1.ConditionValid); old == nil || old.Message != cond.Message {
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, string(v1alpha1.ReasonInvalidPolicy), "Validate", "%s", cond.Message)
	}
	// Secrets are not watched (nor cached); look again for one that appears.
	return reconcile.Result{RequeueAfter: policyRecheckInterval}, nil
}

func (r *Reconciler) validate(ctx context.Context, p *v1alpha1.NodeCyclePolicy) error {
	var errs []error
	if err := p.Spec.DurationErr(); err != nil {
		errs = append(errs, err)
	}
	if _, err := metav1.LabelSelectorAsSelector(&p.Spec.NodeSelector); err != nil {
		errs = append(errs, fmt.Errorf("nodeSelector: %w", err))
	}
	if w := p.Spec.WaitForPods; w != nil && w.PodSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(w.PodSelector); err != nil {
			errs = append(errs, fmt.Errorf("waitForPods.podSelector: %w", err))
		}
	}
	if sel := p.Spec.DrainPodSelector; sel != nil {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			errs = append(errs, fmt.Errorf("drainPodSelector: %w", err))
		}
	}
	if err := gates.Validate(p.Spec.MaintenanceWindows); err != nil {
		errs = append(errs, err)
	}
	if err := gates.ValidateFreezes(p.Spec.Freezes); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := gates.BlockingPod(nil, p.Spec.BlockingPodSelectors); err != nil {
		errs = append(errs, err)
	}
	if err := gates.AlertmanagerAllowed(p.Spec.BlockingAlerts, p.Namespace, r.Namespace, r.AlertmanagerURLs); err != nil {
		errs = append(errs, err)
	}
	for i, q := range p.Spec.BlockingQueries {
		if err := gates.URLAllowed(fmt.Sprintf("blockingQueries[%d].prometheusURL", i), q.PrometheusURL, "--prometheus-urls", p.Namespace, r.Namespace, r.PrometheusURLs); err != nil {
			errs = append(errs, err)
		}
	}
	if slices.Contains(p.Spec.Strategies, v1alpha1.StrategyPowerCycle) && p.Spec.PowerCycle == nil {
		errs = append(errs, errors.New("strategy power-cycle needs spec.powerCycle"))
	}
	if pc := p.Spec.PowerCycle; pc != nil {
		settings, err := powersettings.Settings(ctx, r.APIReader, r.Namespace, p.Namespace, pc)
		if err == nil {
			_, err = r.Providers.New(pc.Provider, settings)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("powerCycle: %w", err))
		}
	}
	return errors.Join(errs...)
}

// policyRecheckInterval is how often an invalid policy is checked again.
const policyRecheckInterval = time.Minute

// SetupWithManager registers the Reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("nodecyclepolicy").
		For(&v1alpha1.NodeCyclePolicy{}).
		Complete(r)
}
