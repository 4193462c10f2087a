package power

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/providers"
)

// Settings reads the provider's settings and credentials. The
// Secret is read from the API server each time (secrets are not cached) and
// its values never leave this function except inside the Settings.
func Settings(ctx context.Context, r client.Reader, namespace string, pc *v1alpha1.PowerCycleSpec) (providers.Settings, error) {
	s := providers.Settings{Endpoint: pc.Endpoint, InsecureSkipVerify: pc.InsecureSkipVerify, Options: pc.Options}
	if pc.CredentialsSecretRef == nil {
		return s, nil
	}
	var secret corev1.Secret
	key := client.ObjectKey{Namespace: namespace, Name: pc.CredentialsSecretRef.Name}
	if err := r.Get(ctx, key, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return s, fmt.Errorf("credentials Secret %s not found", key)
		}
		return s, fmt.Errorf("reading credentials Secret %s: %w", key, err)
	}
	user, pass := secret.Data["username"], secret.Data["password"]
	if len(user) == 0 || len(pass) == 0 {
		return s, fmt.Errorf("credentials Secret %s needs the keys username and password", key)
	}
	s.Username, s.Password = string(user), string(pass)
	return s, nil
}
