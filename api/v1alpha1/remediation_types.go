package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeCycleRemediationSpec is how nodecycle remediates an unhealthy
// Machine's node for a MachineHealthCheck (Cluster API's external
// remediation).
type NodeCycleRemediationSpec struct {
	// Strategies is the ladder each attempt climbs: reboot through the
	// agent (when its pod is Ready), power-cycle through the node's
	// NodeCyclePolicy's provider, replace (the Machine is handed back to
	// its MachineSet).
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	// +kubebuilder:default={reboot,power-cycle,replace}
	// +optional
	Strategies []Strategy `json:"strategies,omitempty"`

	// RetryLimit is how many times the ladder is tried before the
	// remediation fails.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +kubebuilder:default=1
	// +optional
	RetryLimit int32 `json:"retryLimit,omitempty"`
}

// RemediationPhase is where a NodeCycleRemediation stands.
type RemediationPhase string

// Phases of a NodeCycleRemediation.
const (
	// RemediationRunning: a NodeCycle works on the node.
	RemediationRunning RemediationPhase = "Running"
	// RemediationSucceeded: the node came back (or was replaced); the
	// MachineHealthCheck deletes the remediation once it sees it healthy.
	RemediationSucceeded RemediationPhase = "Succeeded"
	// RemediationFailed: every attempt failed, or the Machine cannot be
	// remediated; the message says why.
	RemediationFailed RemediationPhase = "Failed"
)

// NodeCycleRemediationStatus shows the remediation's step.
type NodeCycleRemediationStatus struct {
	// +optional
	Phase RemediationPhase `json:"phase,omitempty"`
	// Attempts is the number of NodeCycles opened so far.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// NodeCycle is the last NodeCycle of the remediation.
	// +optional
	NodeCycle string `json:"nodeCycle,omitempty"`
	// Strategy is the strategy of the ladder that runs (or ran last).
	// +optional
	Strategy Strategy `json:"strategy,omitempty"`
	// Message says, for a person, what is happening.
	// +optional
	Message string `json:"message,omitempty"`
}

// NodeCycleRemediation is created by a MachineHealthCheck whose
// remediation template is a NodeCycleRemediationTemplate, named after the
// unhealthy Machine and owned by it; nodecycle works on the Machine's
// node, and the MachineHealthCheck deletes it once the Machine is healthy.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=nodecycle;cluster-api
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Strategy",type=string,JSONPath=`.status.strategy`
// +kubebuilder:printcolumn:name="Attempts",type=integer,JSONPath=`.status.attempts`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeCycleRemediation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeCycleRemediationSpec   `json:"spec,omitempty"`
	Status NodeCycleRemediationStatus `json:"status,omitempty"`
}

// NodeCycleRemediationList is a list of NodeCycleRemediations.
// +kubebuilder:object:root=true
type NodeCycleRemediationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeCycleRemediation `json:"items"`
}

// NodeCycleRemediationTemplateResource is what a MachineHealthCheck
// copies into each NodeCycleRemediation.
type NodeCycleRemediationTemplateResource struct {
	// +optional
	Spec NodeCycleRemediationSpec `json:"spec,omitempty"`
}

// NodeCycleRemediationTemplateSpec holds the template.
type NodeCycleRemediationTemplateSpec struct {
	Template NodeCycleRemediationTemplateResource `json:"template"`
}

// NodeCycleRemediationTemplate is what a MachineHealthCheck names in
// spec.remediation.templateRef to have nodecycle remediate its unhealthy
// Machines.
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=nodecycle;cluster-api
type NodeCycleRemediationTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec NodeCycleRemediationTemplateSpec `json:"spec,omitempty"`
}

// NodeCycleRemediationTemplateList is a list of NodeCycleRemediationTemplates.
// +kubebuilder:object:root=true
type NodeCycleRemediationTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeCycleRemediationTemplate `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &NodeCycleRemediation{}, &NodeCycleRemediationList{}, &NodeCycleRemediationTemplate{}, &NodeCycleRemediationTemplateList{})
}
