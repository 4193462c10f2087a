package nodecycle

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/signing"
)

// requestKey is the cluster's request key, made the first time a reboot
// is requested there. It is read live (the manager caches no Secret of
// the cluster) and made with a create that fails if another writer was
// first, whose key is then read.
func requestKey(ctx context.Context, w cluster.Workload) ([]byte, error) {
	key := client.ObjectKey{Namespace: w.AgentNamespace, Name: signing.SecretName}
	read := func() ([]byte, error) {
		s := &corev1.Secret{}
		if err := w.Reader.Get(ctx, key, s); err != nil {
			return nil, err
		}
		return signing.FromSecret(s)
	}
	k, err := read()
	if !apierrors.IsNotFound(err) {
		if err != nil {
			return nil, fmt.Errorf("reading the request key (Secret %s): %w", key, err)
		}
		return k, nil
	}
	s, err := signing.NewSecret(key.Namespace)
	if err != nil {
		return nil, err
	}
	err = w.Client.Create(ctx, s)
	if apierrors.IsNotFound(err) {
		// A workload cluster without the agent's namespace yet (its agent
		// installed later, or by other means): made as the agent install
		// makes it.
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: key.Namespace}}
		if nerr := w.Client.Create(ctx, ns); nerr != nil && !apierrors.IsAlreadyExists(nerr) {
			return nil, fmt.Errorf("creating namespace %s for the request key: %w", key.Namespace, nerr)
		}
		s.ResourceVersion = ""
		err = w.Client.Create(ctx, s)
	}
	if apierrors.IsAlreadyExists(err) {
		return read()
	} else if err != nil {
		return nil, fmt.Errorf("creating the request key (Secret %s): %w", key, err)
	}
	return s.Data[signing.SecretKey], nil
}

// dropUpdateContents deletes an update's content Secret from the workload
// cluster when its NodeCycle ends (in this reconcile, before the end is
// saved: a failed delete makes the reconcile, and the delete, happen
// again). The contents were there for the agent only while it needed
// them; the node's update status stays as the record.
func (r *Reconciler) dropUpdateContents(ctx context.Context, s *scope) error {
	u := s.nc.Spec.Update
	if u == nil || u.ContentSecret == "" || s.target == nil || !s.nc.Status.Phase.Terminal() || s.before.Status.Phase.Terminal() {
		return nil
	}
	w := s.workload()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: w.AgentNamespace, Name: u.ContentSecret}}
	if err := w.Client.Delete(ctx, secret); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the update's content Secret %s/%s: %w", w.AgentNamespace, u.ContentSecret, err)
	}
	return nil
}
