package nodecycle

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// deleted handles a NodeCycle being deleted while it holds a finalizer:
// the current strategy's Abandon undoes its phase first (a machine left
// off is powered on), the drain's open EvictionRequests are withdrawn,
// then the finalizers go.
func (r *Reconciler) deleted(ctx context.Context, s *scope) (reconcile.Result, error) {
	if controllerutil.ContainsFinalizer(s.nc, v1alpha1.FinalizerPowerOn) {
		if st, ok := s.current(); ok {
			if _, retry := st.Abandon(ctx, s); retry > 0 {
				return reconcile.Result{RequeueAfter: retry}, nil
			}
		}
	}
	if controllerutil.ContainsFinalizer(s.nc, v1alpha1.FinalizerWithdrawEvictions) {
		if err := r.withdraw(ctx, s, "the NodeCycle was deleted"); err != nil {
			return reconcile.Result{}, err
		}
	}
	s.publishEvents()
	return reconcile.Result{}, r.releaseFinalizers(ctx, s.nc, nil)
}

// finalizers are nodecycle's finalizers on a NodeCycle.
var finalizers = []string{v1alpha1.FinalizerPowerOn, v1alpha1.FinalizerWithdrawEvictions}

// finalizersHeld says which finalizers the NodeCycle's phase keeps: the
// power-on one in a Held phase of its strategy, the withdrawal one while
// it drains.
func (r *Reconciler) finalizersHeld(s *scope) map[string]bool {
	return map[string]bool{
		v1alpha1.FinalizerPowerOn:           s.held(),
		v1alpha1.FinalizerWithdrawEvictions: s.nc.Status.Phase == v1alpha1.PhaseDraining,
	}
}

// releaseFinalizers removes each finalizer of nodecycle's that the
// NodeCycle's phase does not keep (held), and every one of a NodeCycle
// being deleted (deleted released them after undoing their work).
func (r *Reconciler) releaseFinalizers(ctx context.Context, nc *v1alpha1.NodeCycle, held map[string]bool) error {
	before := nc.DeepCopy()
	var released []string
	for _, f := range finalizers {
		if controllerutil.ContainsFinalizer(nc, f) && (!held[f] || !nc.DeletionTimestamp.IsZero()) {
			controllerutil.RemoveFinalizer(nc, f)
			released = append(released, f)
		}
	}
	if len(released) == 0 {
		return nil
	}
	if err := r.Client.Patch(ctx, nc, client.MergeFrom(before)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("removing finalizers %s: %w", strings.Join(released, ", "), err))
	}
	return nil
}

// olderThan reports whether resourceVersion rv is older than ref. The API
// server's resourceVersions are etcd revisions; anything that does not
// parse as one is never called older.
func olderThan(rv, ref string) bool {
	a, errA := strconv.ParseUint(rv, 10, 64)
	b, errB := strconv.ParseUint(ref, 10, 64)
	return errA == nil && errB == nil && a < b
}
