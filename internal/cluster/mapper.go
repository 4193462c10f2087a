package cluster

import (
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// builtinGroups are the API groups of the kinds nodecycle reads and
// writes in a workload cluster: Nodes, Pods and their evictions, Events,
// and what the agent install applies.
var builtinGroups = map[schema.GroupVersion]bool{
	{Version: "v1"}:                                        true,
	{Group: "apps", Version: "v1"}:                         true,
	{Group: "policy", Version: "v1"}:                       true,
	{Group: "events.k8s.io", Version: "v1"}:                true,
	{Group: "coordination.k8s.io", Version: "v1"}:          true,
	{Group: "rbac.authorization.k8s.io", Version: "v1"}:    true,
	{Group: "admissionregistration.k8s.io", Version: "v1"}: true,
}

// clusterScoped are the kinds of builtinGroups that are not namespaced.
var clusterScoped = map[string]bool{
	"Node": true, "Namespace": true, "PersistentVolume": true, "ComponentStatus": true,
	"ClusterRole": true, "ClusterRoleBinding": true,
	"ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
	"MutatingAdmissionPolicy": true, "MutatingAdmissionPolicyBinding": true,
}

// builtinMapper maps the kinds of builtinGroups without asking any API
// server; every workload cluster shares it. A mapper filled from a
// cluster's discovery holds every resource the cluster serves, about
// 200 KiB in a bare cluster and more with each CRD, per cluster.
var builtinMapper = newBuiltinMapper()

func newBuiltinMapper() *meta.DefaultRESTMapper {
	var gvs []schema.GroupVersion
	for gv := range builtinGroups {
		gvs = append(gvs, gv)
	}
	m := meta.NewDefaultRESTMapper(gvs)
	for gvk := range clientgoscheme.Scheme.AllKnownTypes() {
		if !builtinGroups[gvk.GroupVersion()] || strings.HasSuffix(gvk.Kind, "List") || strings.HasSuffix(gvk.Kind, "Options") {
			continue
		}
		scope := meta.RESTScopeNamespace
		if clusterScoped[gvk.Kind] {
			scope = meta.RESTScopeRoot
		}
		plural, singular := meta.UnsafeGuessKindToResource(gvk)
		m.AddSpecific(gvk, plural, singular, scope)
	}
	return m
}

// workloadMapper maps the builtin kinds from builtinMapper and asks the
// cluster's discovery only for another kind, the first time one is used.
func workloadMapper(cfg *rest.Config, hc *http.Client) (meta.RESTMapper, error) {
	discovered, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, err
	}
	return meta.FirstHitRESTMapper{MultiRESTMapper: meta.MultiRESTMapper{builtinMapper, discovered}}, nil
}

// BuiltinRESTMapper returns the REST mapper of the builtin kinds.
func BuiltinRESTMapper() meta.RESTMapper { return builtinMapper }

// IsBuiltin says whether the builtin REST mapper maps the kinds of gv.
func IsBuiltin(gv schema.GroupVersion) bool { return builtinGroups[gv] }
