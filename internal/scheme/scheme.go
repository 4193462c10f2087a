// Package scheme holds the API types nodecycle's manager reads and writes,
// for the manager and the development harness alike (the harness needs
// them without the manager's wiring).
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	lifecyclev1alpha1 "github.com/nodecycle/nodecycle/internal/apis/lifecycle/v1alpha1"
)

// New is a scheme with Kubernetes' types, nodecycle's, Cluster API's core
// types and the EvictionRequest API's.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	_ = clusterv1.AddToScheme(s)
	_ = lifecyclev1alpha1.AddToScheme(s)
	return s
}
