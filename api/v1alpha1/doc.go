// Package v1alpha1 holds the nodecycle.io/v1alpha1 API: NodeCycle and the well-known names of the agent/manager contract.
// +kubebuilder:object:generate=true
// +groupName=nodecycle.io
package v1alpha1
