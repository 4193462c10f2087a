package power

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// H11: credentials come only from the manager's namespace, and a policy of
// another namespace may use a Secret only when the Secret names that
// namespace: writing a policy is not enough to have the manager send a
// credential to an endpoint of one's choosing.
func TestCredentialsComeOnlyFromSecretsThatAllowThePolicy(t *testing.T) {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	secret := func(ns, name, allowed string) *corev1.Secret {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Data: map[string][]byte{"username": []byte("admin"), "password": []byte("s3cret")}}
		if allowed != "" {
			sec.Annotations = map[string]string{AnnotationCredentialsFor: allowed}
		}
		return sec
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		secret("nodecycle-system", "bmc", ""),
		secret("nodecycle-system", "shared", "team-b, team-a"),
		secret("team-a", "own", ""), // in the policy's namespace, not the manager's
	).Build()
	pc := func(name string) *v1alpha1.PowerCycleSpec {
		return &v1alpha1.PowerCycleSpec{Provider: "ipmi", CredentialsSecretRef: &v1alpha1.SecretReference{Name: name}}
	}
	for _, tc := range []struct {
		namespace, secret, wantErr string
	}{
		{"nodecycle-system", "bmc", ""},
		{"team-a", "shared", ""},
		{"team-a", "bmc", "may not be used by namespace team-a"},
		{"team-c", "shared", "may not be used by namespace team-c"},
		{"team-a", "own", "credentials Secret nodecycle-system/own not found"},
	} {
		got, err := Settings(context.Background(), c, "nodecycle-system", tc.namespace, pc(tc.secret))
		switch {
		case tc.wantErr == "" && (err != nil || got.Password != "s3cret"):
			t.Errorf("policy in %s, Secret %s: %v", tc.namespace, tc.secret, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("policy in %s, Secret %s: error %v, want %q", tc.namespace, tc.secret, err, tc.wantErr)
		case tc.wantErr != "" && got.Password != "":
			t.Errorf("policy in %s, Secret %s: the credential was handed out", tc.namespace, tc.secret)
		}
	}
}
