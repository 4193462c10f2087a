package powersettings

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
	"github.com/nodecycle/nodecycle/power"
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
	withData := func(sec *corev1.Secret, key, value string) *corev1.Secret {
		sec.Data[key] = []byte(value)
		return sec
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		secret("nodecycle-system", "bmc", ""),
		withData(withData(secret("nodecycle-system", "shared", "team-b, team-a"), SecretKeyMachines, "10.0.3.7"), SecretKeyProvider, "ipmi"),
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

// N3: for a namespace other than the manager's, the credentials Secret
// says where its credentials go (endpoint, machines, TLS); the policy may
// not aim them, and a provider without credentials is not theirs to use.
func TestASharedSecretSaysWhereItsCredentialsGo(t *testing.T) {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	shared := func(name string, data map[string]string) *corev1.Secret {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "nodecycle-system", Name: name,
			Annotations: map[string]string{AnnotationCredentialsFor: "team-a"}}, Data: map[string][]byte{}}
		for k, v := range data {
			sec.Data[k] = []byte(v)
		}
		return sec
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		shared("vcenter", map[string]string{"username": "u", "password": "p", SecretKeyProvider: "vsphere", SecretKeyEndpoint: "https://vcenter.example", SecretKeyCABundle: "PEM", SecretKeyMachines: "team-a-*"}),
		shared("vcenter-endpoint-only", map[string]string{"username": "u", "password": "p", SecretKeyProvider: "vsphere", SecretKeyEndpoint: "https://vcenter.example"}),
		shared("vcenter-unnamed", map[string]string{"username": "u", "password": "p", SecretKeyEndpoint: "https://vcenter.example", SecretKeyMachines: "team-a-*"}),
		shared("bmcs", map[string]string{"username": "u", "password": "p", SecretKeyProvider: "redfish", SecretKeyMachines: "10.0.3.12, 10.0.4.7"}),
		shared("bmc-patterns", map[string]string{"username": "u", "password": "p", SecretKeyProvider: "redfish", SecretKeyMachines: "10.0.3.*"}),
		shared("nowhere", map[string]string{"username": "u", "password": "p", SecretKeyProvider: "redfish"}),
		shared("libvirt", map[string]string{SecretKeyProvider: "libvirt", SecretKeyEndpoint: "qemu+tcp://kvm-a.example/system", SecretKeyMachines: "team-a-*"}),
		shared("half", map[string]string{"username": "u", SecretKeyProvider: "vsphere", SecretKeyEndpoint: "https://vcenter.example", SecretKeyMachines: "team-a-*"}),
	).Build()
	ref := func(name string) *v1alpha1.SecretReference {
		if name == "" {
			return nil
		}
		return &v1alpha1.SecretReference{Name: name}
	}
	for _, tc := range []struct {
		name    string
		pc      v1alpha1.PowerCycleSpec
		wantErr string
	}{
		{"the Secret's endpoint and TLS", v1alpha1.PowerCycleSpec{Provider: "vsphere", CredentialsSecretRef: ref("vcenter")}, ""},
		{"an endpoint of the policy's own", v1alpha1.PowerCycleSpec{Provider: "vsphere", Endpoint: "https://attacker.example", CredentialsSecretRef: ref("vcenter")}, "may not set endpoint"},
		{"TLS of the policy's own", v1alpha1.PowerCycleSpec{Provider: "vsphere", InsecureSkipVerify: true, CABundle: "x", CredentialsSecretRef: ref("vcenter")}, "may not set insecureSkipVerify, caBundle"},
		{"a libvirt uri of the policy's own", v1alpha1.PowerCycleSpec{Provider: "libvirt", Options: map[string]string{"uri": "qemu+tcp://other/system"}, CredentialsSecretRef: ref("libvirt")}, "may not set options.uri"},
		{"a Secret that says nowhere", v1alpha1.PowerCycleSpec{Provider: "redfish", CredentialsSecretRef: ref("nowhere")}, "lists no machines"},
		// I3: a vCenter credential lent with its endpoint alone, used by a
		// tenant's policy as Redfish against its own HTTPS server.
		{"a vCenter credential as Redfish", v1alpha1.PowerCycleSpec{Provider: "redfish", CredentialsSecretRef: ref("vcenter")}, "is for provider vsphere, not redfish"},
		{"a lent endpoint without machines", v1alpha1.PowerCycleSpec{Provider: "vsphere", CredentialsSecretRef: ref("vcenter-endpoint-only")}, "lists no machines"},
		{"a lent Secret without provider", v1alpha1.PowerCycleSpec{Provider: "vsphere", CredentialsSecretRef: ref("vcenter-unnamed")}, "names no provider"},
		{"BMC patterns in a lent Secret", v1alpha1.PowerCycleSpec{Provider: "redfish", CredentialsSecretRef: ref("bmc-patterns")}, "not patterns"},
		{"no Secret: libvirt over TCP", v1alpha1.PowerCycleSpec{Provider: "libvirt", Endpoint: "qemu+tcp://kvm-b.example/system"}, "needs a credentials Secret"},
		{"a credential-less Secret with its endpoint", v1alpha1.PowerCycleSpec{Provider: "libvirt", CredentialsSecretRef: ref("libvirt")}, ""},
		{"half a credential", v1alpha1.PowerCycleSpec{Provider: "vsphere", CredentialsSecretRef: ref("half")}, "both keys username and password, or neither"},
	} {
		got, err := Settings(context.Background(), c, "nodecycle-system", "team-a", &tc.pc)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		case tc.wantErr != "" && got.Password != "":
			t.Errorf("%s: the credential was handed out", tc.name)
		}
	}
	got, err := Settings(context.Background(), c, "nodecycle-system", "team-a", &v1alpha1.PowerCycleSpec{Provider: "vsphere", CredentialsSecretRef: ref("vcenter")})
	if err != nil || got.Endpoint != "https://vcenter.example" || got.CABundle != "PEM" {
		t.Fatalf("settings %+v, %v: want the Secret's endpoint and CA", got, err)
	}
	// The operator's own namespace: its policy's endpoint must agree with the Secret's.
	if _, err = Settings(context.Background(), c, "nodecycle-system", "nodecycle-system", &v1alpha1.PowerCycleSpec{Provider: "vsphere", Endpoint: "https://other.example", CredentialsSecretRef: ref("vcenter")}); err == nil || !strings.Contains(err.Error(), "is not the endpoint of credentials Secret") {
		t.Fatalf("an endpoint other than the Secret's: %v", err)
	}

	bmcs, err := Settings(context.Background(), c, "nodecycle-system", "team-a", &v1alpha1.PowerCycleSpec{Provider: "redfish", CredentialsSecretRef: ref("bmcs")})
	if err != nil {
		t.Fatal(err)
	}
	for machine, allowed := range map[string]bool{"10.0.3.12": true, "10.0.4.7": true, "10.0.3.13": false, "10.0.4.8": false, "attacker.example": false} {
		err := Allowed(bmcs, power.Machine{Candidates: []string{machine}, Source: "powerCycle.machines[worker-1]"})
		if (err == nil) != allowed {
			t.Errorf("machine %s: %v, want allowed %t", machine, err, allowed)
		}
	}
}
