package settings

import (
	"errors"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultStartupTaints are the taints that say a node cannot serve yet:
// the node lifecycle controller's while it is not Ready or unreachable, the kubelet's or
// a CNI's until the network is up, a cloud provider's until it initialised
// the node, and every taint of kubernetes-sigs/node-readiness-controller's
// NodeReadinessRules (their keys carry the prefix readiness.k8s.io/).
var DefaultStartupTaints = []string{
	"node.kubernetes.io/not-ready",
	"node.kubernetes.io/unreachable",
	"node.kubernetes.io/network-unavailable",
	"node.cloudprovider.kubernetes.io/uninitialized",
	"readiness.k8s.io/",
}

// ValidTaintKey checks a startup taint: a taint key, or a key prefix (a DNS
// subdomain) ending in "/".
func ValidTaintKey(k string) error {
	if prefix, ok := strings.CutSuffix(k, "/"); ok {
		if errs := validation.IsDNS1123Subdomain(prefix); len(errs) > 0 {
			return errors.New("a key prefix must be a DNS subdomain followed by /: " + strings.Join(errs, "; "))
		}
		return nil
	}
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return errors.New("not a taint key: " + strings.Join(errs, "; "))
	}
	return nil
}
