package nodecycle

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// While a NodeCycle may have its machine off (PoweringOff, PoweringOn) it
// carries the finalizer nodecycle.io/power-on: deleting it then (by hand,
// or with its namespace) first powers the machine on, so that no machine
// is left off by a NodeCycle that is gone.

// poweredOff reports the phases in which the machine may be off.
func poweredOff(p v1alpha1.Phase) bool {
	return p == v1alpha1.PhasePoweringOff || p == v1alpha1.PhasePoweringOn
}

// holdPower adds the finalizer before the first power call; the step's
// NodeCycle and its base for the status save take the new metadata.
func holdPower(ctx context.Context, c client.Client, s *step) error {
	if controllerutil.ContainsFinalizer(s.nc, v1alpha1.FinalizerPowerOn) {
		return nil
	}
	held := s.before.DeepCopy()
	controllerutil.AddFinalizer(held, v1alpha1.FinalizerPowerOn)
	if err := c.Patch(ctx, held, client.MergeFromWithOptions(s.before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer %s: %w", v1alpha1.FinalizerPowerOn, err)
	}
	held.ObjectMeta.DeepCopyInto(&s.nc.ObjectMeta)
	held.ObjectMeta.DeepCopyInto(&s.before.ObjectMeta)
	return nil
}

// releasePower removes the finalizer once the machine cannot be off
// because of this NodeCycle any more.
func (r *Reconciler) releasePower(ctx context.Context, nc *v1alpha1.NodeCycle) error {
	if !controllerutil.ContainsFinalizer(nc, v1alpha1.FinalizerPowerOn) || (poweredOff(nc.Status.Phase) && nc.DeletionTimestamp.IsZero()) {
		return nil
	}
	before := nc.DeepCopy()
	controllerutil.RemoveFinalizer(nc, v1alpha1.FinalizerPowerOn)
	if err := r.Client.Patch(ctx, nc, client.MergeFrom(before)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("removing finalizer %s: %w", v1alpha1.FinalizerPowerOn, err))
	}
	return nil
}

// deleted handles a NodeCycle being deleted: in a power phase, the machine
// is powered on first (retried until the power timeout after the
// deletion, then given up with a Warning Event); then the finalizer goes.
func (r *Reconciler) deleted(ctx context.Context, s *step) (reconcile.Result, error) {
	nc := s.nc
	if !controllerutil.ContainsFinalizer(nc, v1alpha1.FinalizerPowerOn) {
		return reconcile.Result{}, nil
	}
	if poweredOff(nc.Status.Phase) {
		st, ok := s.table[v1alpha1.StrategyPowerCycle].(*powerCycle)
		var err error
		if ok {
			err = st.powerOnNow(ctx, s)
		}
		if err != nil {
			if waited := s.now.Sub(nc.DeletionTimestamp.Time); waited < limit(s) {
				return reconcile.Result{RequeueAfter: powerPollInterval}, nil
			}
			s.event(corev1.EventTypeWarning, v1alpha1.ReasonProviderError, "NodeCycle deleted while the machine may be off; powering it on failed for %s: %v", limit(s), err)
		} else {
			s.event(corev1.EventTypeNormal, v1alpha1.ReasonPoweredOn, "NodeCycle deleted in %s; the machine was powered on", nc.Status.Phase)
		}
	}
	return reconcile.Result{}, r.releasePower(ctx, nc)
}
