package cycles

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// Refused is an on-demand request that is refused; Why says why, for the
// person who asked. Nothing is done to the node.
type Refused struct{ Why string }

func (r *Refused) Error() string { return r.Why }

// Refusef returns a Refused.
func Refusef(format string, args ...any) error { return &Refused{Why: fmt.Sprintf(format, args...)} }

// ResolveRequest fills in the on-demand request nc: spec is what an
// automatic NodeCycle of node would get (its ladder, from the node's
// policy or Machine, is what the request may choose from).
func ResolveRequest(nc *v1alpha1.NodeCycle, node *corev1.Node, spec v1alpha1.NodeCycleSpec) (v1alpha1.NodeCycleSpec, error) {
	req := nc.Spec.Request
	if want := req.Strategy; want != "" {
		if !slices.Contains(spec.Strategies, want) {
			from := "the manager's default"
			switch {
			case spec.MachineName != "":
				from = "its MachineDeployment's " + v1alpha1.AnnotationStrategy
			case spec.Policy != "":
				from = "NodeCyclePolicy " + spec.Policy
			}
			return spec, Refusef("strategy %s is not allowed for node %s: its ladder is %v (from %s)", want, node.Name, spec.Strategies, from)
		}
		spec.Strategies = []v1alpha1.Strategy{want}
	}
	spec.NodeName = nc.Spec.NodeName
	spec.ClusterName = nc.Spec.ClusterName
	r := *req
	spec.Request = &r
	spec.Update = nc.Spec.Update
	spec.Attempt = 1
	spec.BootID = nodes.BootID(node)
	return spec, nil
}
