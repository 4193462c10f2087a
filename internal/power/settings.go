package power

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/providers"
)

// AnnotationCredentialsFor on a credentials Secret lists, separated by
// commas, the namespaces whose NodeCyclePolicies may use it besides its own.
const AnnotationCredentialsFor = "nodecycle.io/credentials-for"

// Settings reads the provider's settings and credentials for a policy of
// namespace. Credentials Secrets are read only from secrets, the manager's
// own namespace; a policy of another namespace (a Cluster's, in Cluster
// API mode) may use one only when the Secret names that namespace in its
// annotation nodecycle.io/credentials-for. So whoever may write a policy
// but not read Secrets cannot make the manager send a credential it was
// not given. The Secret is read from the API server each time (Secrets are
// not cached) and its values never leave this function except inside the
// Settings.
func Settings(ctx context.Context, r client.Reader, secrets, namespace string, pc *v1alpha1.PowerCycleSpec) (providers.Settings, error) {
	s := providers.Settings{Endpoint: pc.Endpoint, InsecureSkipVerify: pc.InsecureSkipVerify, CABundle: pc.CABundle, Options: pc.Options}
	if pc.CredentialsSecretRef == nil {
		return s, nil
	}
	var secret corev1.Secret
	key := client.ObjectKey{Namespace: secrets, Name: pc.CredentialsSecretRef.Name}
	if err := r.Get(ctx, key, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return s, fmt.Errorf("credentials Secret %s not found (credentials Secrets are read from the manager's namespace)", key)
		}
		return s, fmt.Errorf("reading credentials Secret %s: %w", key, err)
	}
	if namespace != secrets && !slices.Contains(strings.Split(strings.ReplaceAll(secret.Annotations[AnnotationCredentialsFor], " ", ""), ","), namespace) {
		return s, fmt.Errorf("credentials Secret %s may not be used by namespace %s: the Secret's owner lists the namespaces allowed in its annotation %s", key, namespace, AnnotationCredentialsFor)
	}
	user, pass := secret.Data["username"], secret.Data["password"]
	if len(user) == 0 || len(pass) == 0 {
		return s, fmt.Errorf("credentials Secret %s needs the keys username and password", key)
	}
	s.Username, s.Password = string(user), string(pass)
	return s, nil
}
