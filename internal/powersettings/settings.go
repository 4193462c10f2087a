package powersettings

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/power"
)

// AnnotationCredentialsFor on a credentials Secret lists, separated by
// commas, the namespaces whose NodeCyclePolicies may use it besides its own.
const AnnotationCredentialsFor = "nodecycle.io/credentials-for"

// Keys of a credentials Secret besides username and password: what the
// operator who owns the Secret says about where its credentials may go.
// They win over a policy's own settings; a policy of another namespace
// (credentials-for) may not set these itself.
const (
	// SecretKeyEndpoint is the provider's endpoint (vCenter URL, libvirt
	// URI or address, VBoxManage path).
	SecretKeyEndpoint = "endpoint"
	// SecretKeyMachines lists, one per line or separated by commas, the
	// machines (VM names or UUIDs, BMC addresses) the credentials may be
	// used for; path.Match patterns (tenant-a-*, 10.0.3.*).
	SecretKeyMachines = "machines"
	// SecretKeyProvider names the provider the credentials are for. A
	// Secret lent to other namespaces must say it: the credentials of a
	// vCenter are never sent to a Redfish address a tenant chose.
	SecretKeyProvider = "provider"
	// SecretKeyCABundle and SecretKeyInsecureSkipVerify are the TLS
	// settings of the endpoint or the BMCs.
	SecretKeyCABundle           = "caBundle"
	SecretKeyInsecureSkipVerify = "insecureSkipVerify"
)

// Settings reads the provider's settings and credentials for a policy of
// namespace. Credentials Secrets are read only from secrets, the manager's
// own namespace; a policy of another namespace (a Cluster's, in Cluster
// API mode) may use one only when the Secret names that namespace in its
// annotation nodecycle.io/credentials-for, and it must use one: a provider
// without credentials (libvirt, VirtualBox) would otherwise reach whatever
// the manager reaches. For such a namespace, where the credentials go is
// the Secret's to say: its endpoint (key endpoint) or the machines it
// allows (key machines), and its TLS settings; the policy may not set
// them, nor the libvirt uri option. So whoever may write a policy but not
// read Secrets cannot make the manager send a credential, or a power-off,
// anywhere it was not given for. The Secret is read from the API server
// each time (Secrets are not cached) and its values never leave this
// function except inside the Settings.
func Settings(ctx context.Context, r client.Reader, secrets, namespace string, pc *v1alpha1.PowerCycleSpec) (power.Settings, error) {
	s := power.Settings{Endpoint: pc.Endpoint, InsecureSkipVerify: pc.InsecureSkipVerify, CABundle: pc.CABundle, Options: pc.Options}
	foreign := namespace != secrets
	if pc.CredentialsSecretRef == nil {
		if foreign {
			return s, fmt.Errorf("a policy of namespace %s needs a credentials Secret (spec.powerCycle.credentialsSecretRef) of the manager's namespace %s that lists it in %s and says where it may be used (key %s or %s)",
				namespace, secrets, AnnotationCredentialsFor, SecretKeyEndpoint, SecretKeyMachines)
		}
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
	if foreign && !slices.Contains(strings.Split(strings.ReplaceAll(secret.Annotations[AnnotationCredentialsFor], " ", ""), ","), namespace) {
		return s, fmt.Errorf("credentials Secret %s may not be used by namespace %s: the Secret's owner lists the namespaces allowed in its annotation %s", key, namespace, AnnotationCredentialsFor)
	}
	if foreign {
		if err := ownSettingsOf(pc); err != nil {
			return s, fmt.Errorf("credentials Secret %s is shared with namespace %s, whose policy %w", key, namespace, err)
		}
		if err := lentFor(secret.Data, pc.Provider); err != nil {
			return s, fmt.Errorf("credentials Secret %s is shared with namespace %s but %w", key, namespace, err)
		}
	}
	if v := strings.TrimSpace(string(secret.Data[SecretKeyProvider])); v != "" && v != pc.Provider {
		return s, fmt.Errorf("credentials Secret %s is for provider %s, not %s", key, v, pc.Provider)
	}
	if v := string(secret.Data[SecretKeyEndpoint]); v != "" {
		if pc.Endpoint != "" && pc.Endpoint != v {
			return s, fmt.Errorf("spec.powerCycle.endpoint %q is not the endpoint of credentials Secret %s: leave it out", pc.Endpoint, key)
		}
		s.Endpoint = v
	}
	if v, ok := secret.Data[SecretKeyCABundle]; ok {
		s.CABundle = string(v)
	}
	if v, ok := secret.Data[SecretKeyInsecureSkipVerify]; ok {
		s.InsecureSkipVerify = strings.TrimSpace(string(v)) == "true"
	}
	s.Machines = machineList(secret.Data)
	user, pass := secret.Data["username"], secret.Data["password"]
	if (len(user) == 0) != (len(pass) == 0) {
		return s, fmt.Errorf("credentials Secret %s needs both keys username and password, or neither", key)
	}
	s.Username, s.Password = string(user), string(pass)
	return s, nil
}

// bmcProviders are the providers whose machines are BMC addresses: the
// address a credential is sent to.
var bmcProviders = []string{"redfish", "ipmi"}

// lentFor says what a Secret lent to another namespace lacks to be used
// by provider: it must name its provider (key provider) and list the
// machines it may be used for (key machines; an endpoint alone would let
// the tenant map its nodes to any machine behind it); for a provider that
// sends the credential to each machine's address (Redfish, IPMI) the list
// holds addresses, not patterns, so every address comes from the Secret's
// owner, never from the tenant's policy.
func lentFor(data map[string][]byte, provider string) error {
	named := strings.TrimSpace(string(data[SecretKeyProvider]))
	machines := machineList(data)
	switch {
	case named == "":
		return fmt.Errorf("names no provider: add key %s (%s)", SecretKeyProvider, provider)
	case named != provider:
		return fmt.Errorf("is for provider %s, not %s", named, provider)
	case len(machines) == 0:
		return fmt.Errorf("lists no machines it may be used for: add key %s", SecretKeyMachines)
	}
	if slices.Contains(bmcProviders, provider) {
		for _, m := range machines {
			if strings.ContainsAny(m, "*?[\\") {
				return fmt.Errorf("lists %q in %s: a lent %s credential goes only to addresses the Secret names, not patterns", m, SecretKeyMachines, provider)
			}
		}
	}
	return nil
}

// machineList is a Secret's machines, one per line or separated by commas.
func machineList(data map[string][]byte) []string {
	return strings.FieldsFunc(string(data[SecretKeyMachines]), func(r rune) bool { return r == ',' || r == '\n' || r == ' ' })
}

// ownSettingsOf says what a policy sets that only a shared Secret may.
func ownSettingsOf(pc *v1alpha1.PowerCycleSpec) error {
	var set []string
	if pc.Endpoint != "" {
		set = append(set, "endpoint")
	}
	if pc.InsecureSkipVerify {
		set = append(set, "insecureSkipVerify")
	}
	if pc.CABundle != "" {
		set = append(set, "caBundle")
	}
	if _, ok := pc.Options["uri"]; ok {
		set = append(set, "options.uri")
	}
	if len(set) == 0 {
		return nil
	}
	return fmt.Errorf("may not set %s: they come from the Secret", strings.Join(set, ", "))
}

// Allowed checks that every form of machine m is one the settings'
// credentials may be used for.
func Allowed(s power.Settings, m power.Machine) error {
	if len(s.Machines) == 0 {
		return nil
	}
	for _, c := range m.Candidates {
		if !slices.ContainsFunc(s.Machines, func(pattern string) bool { ok, _ := path.Match(pattern, c); return ok }) {
			return fmt.Errorf("machine %s (from %s) is not one its credentials Secret allows (key %s)", c, m.Source, SecretKeyMachines)
		}
	}
	return nil
}
