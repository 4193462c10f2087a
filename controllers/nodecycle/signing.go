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
