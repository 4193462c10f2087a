// Package v1alpha1 is the client's view of lifecycle.k8s.io/v1alpha1
// (Kubernetes 1.37+, feature gate EvictionRequestAPI): the EvictionRequest
// a requester writes and the Eviction the cluster's evictionrequest-controller
// keeps for each target. Only the fields nodecycle reads or writes are
// here; they are named and encoded as the API server serves them. The
// project's k8s.io/api has no such group yet.
//
// +kubebuilder:object:generate=true
// +groupName=lifecycle.k8s.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// GroupVersion is the API group and version of the types.
var GroupVersion = schema.GroupVersion{Group: "lifecycle.k8s.io", Version: "v1alpha1"}

// Resources of GroupVersion, as discovery lists them.
const (
	ResourceEvictionRequests = "evictionrequests"
	ResourceEvictions        = "evictions"
)

// AddToScheme registers the types in a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &EvictionRequest{}, &EvictionRequestList{}, &Eviction{}, &EvictionList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// ImperativeEvictor is the default responder of every pod: it calls the
// Eviction API (PodDisruptionBudgets apply), with a backoff.
const ImperativeEvictor = "imperative-eviction.k8s.io/evictor"

// Intent is what a requester wants of its target.
type Intent string

// Intents of an EvictionRequest.
const (
	IntentEviction  Intent = "Eviction"
	IntentWithdrawn Intent = "Withdrawn"
)

// Condition types of EvictionRequests and Evictions.
const (
	ConditionTargetEvicted = "TargetEvicted"
	ConditionFailed        = "Failed"
)

// ResponderState is where a responder stands in an Eviction.
type ResponderState string

// Responder states.
const (
	ResponderInactive    ResponderState = "Inactive"
	ResponderActive      ResponderState = "Active"
	ResponderInterrupted ResponderState = "Interrupted"
	ResponderCanceled    ResponderState = "Canceled"
	ResponderCompleted   ResponderState = "Completed"
)

// EvictionRequest asks for the graceful eviction of a pod.
// +kubebuilder:object:root=true
type EvictionRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              EvictionRequestSpec   `json:"spec"`
	Status            EvictionRequestStatus `json:"status,omitempty"`
}

// EvictionRequestSpec names the target, the requester and its intent.
type EvictionRequestSpec struct {
	Target    Target `json:"target"`
	Requester string `json:"requester"`
	Intent    Intent `json:"intent"`
}

// Target is the object to evict: a pod of the request's namespace.
type Target struct {
	Pod *PodReference `json:"pod,omitempty"`
}

// PodReference names a pod and its UID.
type PodReference struct {
	Name string    `json:"name"`
	UID  types.UID `json:"uid"`
}

// EvictionRequestStatus is kept by the evictionrequest-controller.
type EvictionRequestStatus struct {
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	ObservedGeneration *int64             `json:"observedGeneration,omitempty"`
}

// EvictionRequestList is a list of EvictionRequests.
// +kubebuilder:object:root=true
type EvictionRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EvictionRequest `json:"items"`
}

// Eviction is the cluster's record of one target's eviction: its
// requesters, its responders in priority order and their progress.
// +kubebuilder:object:root=true
type Eviction struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              EvictionSpec   `json:"spec"`
	Status            EvictionStatus `json:"status,omitempty"`
}

// EvictionSpec names the target.
type EvictionSpec struct {
	Target Target `json:"target"`
}

// EvictionStatus is kept by the evictionrequest-controller and the responders.
type EvictionStatus struct {
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	ObservedGeneration *int64             `json:"observedGeneration,omitempty"`
	Requesters         []Requester        `json:"requesters,omitempty"`
	TargetResponders   []TargetResponder  `json:"targetResponders,omitempty"`
	Responders         []ResponderStatus  `json:"responders,omitempty"`
}

// Requester is one requester of an Eviction and its intent.
type Requester struct {
	Name   string `json:"name"`
	Intent Intent `json:"intent"`
}

// TargetResponder is a responder of the target, by priority, and its state.
type TargetResponder struct {
	Name     string         `json:"name"`
	Priority *int32         `json:"priority"`
	State    ResponderState `json:"state"`
}

// ResponderStatus is what a responder reports of its work.
type ResponderStatus struct {
	Name                   string       `json:"name"`
	StartTime              *metav1.Time `json:"startTime,omitempty"`
	HeartbeatTime          *metav1.Time `json:"heartbeatTime,omitempty"`
	ExpectedCompletionTime *metav1.Time `json:"expectedCompletionTime,omitempty"`
	CompletionTime         *metav1.Time `json:"completionTime,omitempty"`
	Message                *string      `json:"message,omitempty"`
}

// EvictionList is a list of Evictions.
// +kubebuilder:object:root=true
type EvictionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Eviction `json:"items"`
}
