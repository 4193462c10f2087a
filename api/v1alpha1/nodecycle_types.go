package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Strategy is one way of bringing a node through maintenance.
// +kubebuilder:validation:Enum=reboot;power-cycle;replace
type Strategy string

const (
	// StrategyReboot drains the node and reboots it in place through the agent.
	StrategyReboot Strategy = "reboot"
	// StrategyPowerCycle drains the node and power-cycles its machine
	// through a provider (hypervisor or BMC).
	StrategyPowerCycle Strategy = "power-cycle"
	// StrategyReplace cordons the node and deletes its Cluster API Machine;
	// Cluster API drains it and its MachineSet creates the replacement.
	StrategyReplace Strategy = "replace"
)

// Phase is a step of the NodeCycle state machine.
type Phase string

// Phases in the order a successful reboot walks through them. Succeeded,
// Failed and Skipped are terminal.
const (
	PhasePending             Phase = "Pending"
	PhaseCordoning           Phase = "Cordoning"
	PhaseDraining            Phase = "Draining"
	PhaseRebooting           Phase = "Rebooting"
	PhasePoweringOff         Phase = "PoweringOff"
	PhasePoweringOn          Phase = "PoweringOn"
	PhaseWaitingForNodeReady Phase = "WaitingForNodeReady"
	PhaseUncordoning         Phase = "Uncordoning"
	// Wait points of the in-place strategies, entered only while the Node
	// carries a hook annotation: after the drain, before the reboot or power
	// cycle (pre-reboot.hook.nodecycle.io/*), and after the proof of
	// reboot, before the uncordon (post-reboot.hook.nodecycle.io/*).
	PhaseWaitingForPreRebootHooks  Phase = "WaitingForPreRebootHooks"
	PhaseWaitingForPostRebootHooks Phase = "WaitingForPostRebootHooks"
	// PhaseWaitingForPods: after the proof of reboot, the node's DaemonSet
	// pods (or a selector's) are not Ready yet, or a startup taint is still
	// on the node (spec.waitForPods).
	PhaseWaitingForPods Phase = "WaitingForPods"
	// Phases of the replace strategy, which never uncordons: the node goes.
	PhaseDeletingMachine       Phase = "DeletingMachine"
	PhaseWaitingForReplacement Phase = "WaitingForReplacement"
	PhaseSucceeded             Phase = "Succeeded"
	PhaseFailed                Phase = "Failed"
	PhaseSkipped               Phase = "Skipped"
)

// Terminal reports whether no more work is done for a NodeCycle in phase p.
func (p Phase) Terminal() bool {
	return p == PhaseSucceeded || p == PhaseFailed || p == PhaseSkipped
}

// Active reports whether a NodeCycle in phase p holds one of its cluster's
// maintenance slots.
func (p Phase) Active() bool {
	return p != "" && p != PhasePending && !p.Terminal()
}

// NodeCycleSpec says which node is cycled and with which settings. The
// settings are copied from the manager's configuration when the NodeCycle is
// created, so an operation keeps its settings across manager restarts.
// +kubebuilder:validation:XValidation:rule="has(self.request) || (has(self.strategies) && has(self.attempt) && has(self.drain) && has(self.rebootTimeout))",message="strategies, attempt, drain and rebootTimeout are required, unless the NodeCycle is an on-demand request (spec.request)"
type NodeCycleSpec struct {
	// NodeName is the Node this operation is about.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="nodeName is immutable"
	NodeName string `json:"nodeName"`

	// ClusterName names the workload cluster of the node; empty means the
	// cluster the manager runs in.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ClusterName string `json:"clusterName,omitempty"`

	// MachineName is the Cluster API Machine of the node, in the NodeCycle's
	// namespace; empty outside Cluster API.
	// +optional
	MachineName string `json:"machineName,omitempty"`

	// ControlPlane says the node's Machine belongs to the cluster's control
	// plane: it is cycled only while no other node of its cluster is.
	// +optional
	ControlPlane bool `json:"controlPlane,omitempty"`

	// Strategies is the escalation ladder: the first runs; when its wait for
	// the node times out, the next one runs, on the still drained node.
	// Left out of an on-demand request: the manager fills it in.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	Strategies []Strategy `json:"strategies,omitempty"`

	// Remediation names the NodeCycleRemediation (of a MachineHealthCheck)
	// this NodeCycle works for: the node need not be Ready nor ask for a
	// reboot (it is unhealthy), and its Machine is not kept off
	// MachineHealthChecks (the MachineHealthCheck asked).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Remediation string `json:"remediation,omitempty"`

	// Request marks an on-demand request: a NodeCycle a person created
	// (kubectl create, kubectl nodecycle request) for a node that need not
	// ask for a reboot. It needs only nodeName (and clusterName in Cluster
	// API mode); the manager fills in the rest of the spec once, from the
	// settings an automatic NodeCycle of the node would get, or refuses the
	// request (phase Failed, reason RequestRefused, the message says why).
	// +optional
	Request *RequestSpec `json:"request,omitempty"`

	// Policy names the NodeCyclePolicy the settings came from; empty when
	// they came from the manager's flags.
	// +optional
	Policy string `json:"policy,omitempty"`

	// PowerCycle holds the provider settings, for the power-cycle strategy.
	// +optional
	PowerCycle *PowerCycleSpec `json:"powerCycle,omitempty"`

	// Gates hold when the operation may start.
	Gates `json:",inline"`

	// BootID is the boot the node ran when the operation was opened.
	// +optional
	BootID string `json:"bootID,omitempty"`

	// Attempt counts the operations for the same boot of this node, from 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Attempt int32 `json:"attempt,omitempty"`

	// Drain holds how pods are evicted.
	// +optional
	Drain DrainSpec `json:"drain,omitzero"`

	// RebootTimeout bounds the wait from the reboot request until the node
	// runs a new boot and is Ready.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('720h')",message="must be a duration from 1s to 720h"
	RebootTimeout Duration `json:"rebootTimeout,omitzero"`

	// ReplaceTimeout bounds the replace strategy, from the Machine's deletion
	// until its replacement's Node is Ready.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('720h')",message="must be a duration from 1s to 720h"
	ReplaceTimeout *Duration `json:"replaceTimeout,omitempty"`

	// Hooks hold the in-place strategies for other controllers.
	// +optional
	Hooks *HookSpec `json:"hooks,omitempty"`

	// Update is a change to the node's files that its reboot applies: the
	// agent writes the files before it reboots the node and checks them on
	// the new boot; the NodeCycle succeeds only once the node reports them
	// in place. Set by the Cluster API in-place update extension, for the
	// reboot strategy only.
	// +optional
	Update *UpdateSpec `json:"update,omitempty"`

	// WaitForPods: after the proof of reboot, the node is uncordoned only
	// once these pods on it are Ready (again, since the maintenance began)
	// and its startup taints are gone, within its timeout; then the
	// NodeCycle fails PodsNotReady (or StartupTaintsNotRemoved) and the
	// node is uncordoned.
	// +optional
	WaitForPods *PodsReadySpec `json:"waitForPods,omitempty"`
}

// UpdateSpec is an in-place update: whole files, written atomically by
// the agent. The NodeCycle keeps their paths, modes and digests; their
// contents are in ContentSecret, in the workload cluster, for the agent
// alone.
type UpdateSpec struct {
	// ID names the content (a hash of the files): the node reports the
	// update it applied by this ID.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+$`
	ID string `json:"id"`

	// Source says who asked, for the people who read the NodeCycle: the
	// Machine whose update this is.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Source string `json:"source,omitempty"`

	// ContentSecret is the Secret of the workload cluster's agent
	// namespace that holds the files' contents, each under its SHA-256:
	// made when the update's NodeCycle is opened, deleted when it ends,
	// readable by the agent alone.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ContentSecret string `json:"contentSecret,omitempty"`

	// Files are written under the node's root before the reboot.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=path
	Files []UpdateFile `json:"files"`
}

// UpdateFile is one file of an in-place update.
type UpdateFile struct {
	// Path is the file's absolute path on the node.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^/[^\x00]*$`
	Path string `json:"path"`

	// SHA256 is the hex SHA-256 of the file's whole content (which is in
	// the update's ContentSecret, under this key).
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	SHA256 string `json:"sha256"`

	// Permissions in octal, 0644 when empty.
	// +optional
	// +kubebuilder:validation:Pattern=`^0?[0-7]{3}$`
	Permissions string `json:"permissions,omitempty"`
}

// RequestSpec is what a person asks for in an on-demand request.
type RequestSpec struct {
	// Strategy to use; empty: the ladder an automatic NodeCycle of the
	// node would get. It must be one of that ladder's strategies (the
	// node's NodeCyclePolicy or MachineDeployment allows it).
	// +optional
	Strategy Strategy `json:"strategy,omitempty"`

	// Reason says why, for the people who read the NodeCycle and the
	// node's Events.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1f\x7f]*$`
	Reason string `json:"reason,omitempty"`

	// RequestedBy is the user name of who asked, as the API server knows
	// them (kubectl auth whoami). The install's admission policy
	// (config/request-policy) makes it the creator's own user name;
	// kubectl nodecycle request fills it in.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1f\x7f]*$`
	RequestedBy string `json:"requestedBy,omitempty"`
}

// Unresolved says that the NodeCycle is an on-demand request whose spec
// the manager has not filled in yet.
func (s *NodeCycleSpec) Unresolved() bool {
	return s.Request != nil && len(s.Strategies) == 0
}

// PodsReadySpec says when a rebooted node can serve again: which of its
// pods must be Ready on the new boot and which taints must be gone before
// it takes other pods. A pod that was not Ready when the maintenance began
// is not waited for (it did not serve before either).
type PodsReadySpec struct {
	// DaemonSetPods: the node's DaemonSet pods (kube-proxy, CNI, storage
	// and log agents, nodecycle's agent).
	// +optional
	DaemonSetPods bool `json:"daemonSetPods,omitempty"`
	// PodSelector: the node's pods it selects (with DaemonSetPods, those
	// too).
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// StartupTaints: taint keys that must be gone from the node (set by a
	// CNI, a cloud provider or node-readiness-controller's rules until the
	// node is ready for them); a key ending in "/" matches every key with
	// that prefix. Default: the manager's --startup-taints.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=317
	// +kubebuilder:validation:items:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`
	StartupTaints []string `json:"startupTaints,omitempty"`
	// Timeout bounds the wait; then the NodeCycle fails PodsNotReady (or
	// StartupTaintsNotRemoved) and the node, Ready, is uncordoned. Default:
	// the manager's --wait-for-pods-timeout (10m).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('720h')",message="must be a duration from 1s to 720h"
	Timeout *Duration `json:"timeout,omitempty"`
}

// HookSpec says how nodecycle waits for other controllers around a reboot
// (a storage operator moving data, a database operator moving a primary)
// and which labels tell them that the node is in maintenance.
type HookSpec struct {
	// Timeout bounds each wait: before the reboot, while the Node carries
	// an annotation with the prefix pre-reboot.hook.nodecycle.io/ (then the
	// NodeCycle fails PreRebootHookTimeout and the node is uncordoned,
	// nothing rebooted); before the uncordon, while it carries one with the
	// prefix post-reboot.hook.nodecycle.io/ (then the NodeCycle fails
	// PostRebootHookTimeout and the node stays cordoned until those hooks
	// are released). Default: the manager's --hook-timeout (30m).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('720h')",message="must be a duration from 1s to 720h"
	Timeout *Duration `json:"timeout,omitempty"`

	// Labels are put on the Node with nodecycle's cordon and removed with
	// its uncordon (kured's pre- and post-reboot node labels), so that
	// other controllers can select nodes in maintenance.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	Labels map[string]string `json:"labels,omitempty"`
}

// DrainSpec holds how pods are evicted from a node.
type DrainSpec struct {
	// Timeout bounds the whole drain. When it passes, the operation fails and
	// the node is uncordoned if nodecycle cordoned it.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('720h')",message="must be a duration from 1s to 720h"
	Timeout Duration `json:"timeout"`

	// GracePeriodSeconds is given to each evicted pod; -1 keeps the pod's own.
	// 0 is refused: it would delete pods at once, without waiting for their
	// containers to stop.
	// +kubebuilder:default=-1
	// +kubebuilder:validation:Minimum=-1
	// +kubebuilder:validation:XValidation:rule="self != 0",message="0 would force-delete pods; use -1 (each pod's own) or at least 1"
	GracePeriodSeconds int64 `json:"gracePeriodSeconds"`

	// DeleteEmptyDirData allows evicting pods that use emptyDir volumes.
	DeleteEmptyDirData bool `json:"deleteEmptyDirData"`

	// EvictUnmanagedPods allows evicting pods no controller recreates.
	EvictUnmanagedPods bool `json:"evictUnmanagedPods"`

	// The escape hatches below are off by default; each trades safety for
	// a drain that finishes (docs/operations.md, "Drain escape hatches").

	// PodSelector: only the pods it selects are evicted (kured's
	// --drain-pod-selector); the others stay and go down with the reboot.
	// Empty: every pod.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`

	// SkipWaitForDeleteTimeoutSeconds: a pod whose deletion began more than
	// this long ago is not waited for (kubectl drain's
	// --skip-wait-for-delete-timeout; what Cluster API does on an
	// unreachable node, where pods are never confirmed gone). 0: every pod
	// is waited for.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SkipWaitForDeleteTimeoutSeconds int64 `json:"skipWaitForDeleteTimeoutSeconds,omitempty"`

	// DeleteAfterTimeout: when the drain timeout passes, the pods still on
	// the node are deleted, which no PodDisruptionBudget stops, and the
	// maintenance goes on, instead of failing DrainTimeout.
	// +optional
	DeleteAfterTimeout bool `json:"deleteAfterTimeout,omitempty"`

	// EvictionRequests says how the drain asks pods to leave. Auto (empty
	// too): through EvictionRequests (lifecycle.k8s.io/v1alpha1) where the
	// node's cluster serves them, so that a pod's eviction responders (a
	// database moving its primary away first) act before the pod goes;
	// otherwise through the Eviction API. Always: only through
	// EvictionRequests; a cluster that does not serve them fails the drain
	// (DrainRefused). Never: through the Eviction API.
	// +optional
	EvictionRequests EvictionRequestsMode `json:"evictionRequests,omitempty"`

	// Failure says what follows a drain that cannot finish (DrainTimeout,
	// DrainRefused). Uncordon (empty too): the node is uncordoned and tried
	// again after the retry backoff. LeaveCordoned: the node stays cordoned
	// (its pods left where they are) until a later attempt ends, the node
	// runs a new boot or stops asking for a reboot, or someone uncordons
	// it; it is tried again after the backoff. SkipNode: the node is
	// uncordoned and not tried again on this boot (MaintenanceInProgress
	// reason NodeSkipped, until the node reboots, stops asking, or the
	// failed NodeCycle is deleted); the other nodes go on.
	// +optional
	Failure DrainFailureAction `json:"failure,omitempty"`
}

// DrainFailureAction is what follows a drain that cannot finish.
// +kubebuilder:validation:Enum=Uncordon;LeaveCordoned;SkipNode
type DrainFailureAction string

// Actions of DrainSpec.Failure.
const (
	DrainFailureUncordon      DrainFailureAction = "Uncordon"
	DrainFailureLeaveCordoned DrainFailureAction = "LeaveCordoned"
	DrainFailureSkipNode      DrainFailureAction = "SkipNode"
)

// EvictionRequestsMode says whether a drain goes through EvictionRequests.
// +kubebuilder:validation:Enum=Auto;Always;Never
type EvictionRequestsMode string

// Modes of DrainSpec.EvictionRequests.
const (
	EvictionRequestsAuto   EvictionRequestsMode = "Auto"
	EvictionRequestsAlways EvictionRequestsMode = "Always"
	EvictionRequestsNever  EvictionRequestsMode = "Never"
)

// NodeCycleStatus is the durable state of the operation. A restarted manager
// resumes from it.
type NodeCycleStatus struct {
	// Phase is where the operation stands: Pending, a phase of the engine
	// or of the running strategy, or a terminal phase.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// Strategy is the strategy of the ladder that runs now
	// (spec.strategies[step]).
	// +optional
	Strategy Strategy `json:"strategy,omitempty"`

	// Step is the index in spec.strategies of the strategy that runs now
	// (the ladder's step); escalation moves it to the next index.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Step int32 `json:"step,omitempty"`

	// PowerOffMode is how the machine is being powered off: Soft first,
	// Hard once the soft-off timeout passed.
	// +optional
	PowerOffMode string `json:"powerOffMode,omitempty"`

	// Message says, for a person, what is happening or what went wrong.
	// +optional
	Message string `json:"message,omitempty"`

	// Reason is a CamelCase word for why the operation failed or was skipped.
	// +optional
	Reason Reason `json:"reason,omitempty"`

	// StartTime is when the operation took its maintenance slot.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`
	StartTime *metav1.MicroTime `json:"startTime,omitempty"`

	// StartupTaintsAtStart are the startup taints of spec.waitForPods that
	// were on the node when the maintenance began: not waited for after
	// the reboot (the node served with them before).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=317
	StartupTaintsAtStart []string `json:"startupTaintsAtStart,omitempty"`

	// PhaseStartTime is when the current phase began; timeouts count from it.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`
	PhaseStartTime *metav1.MicroTime `json:"phaseStartTime,omitempty"`

	// CompletionTime is when the operation reached a terminal phase.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`
	CompletionTime *metav1.MicroTime `json:"completionTime,omitempty"`

	// BootIDBefore is the node's boot ID recorded before the reboot request.
	// +optional
	BootIDBefore string `json:"bootIDBefore,omitempty"`

	// RebootRequestTime is when the reboot was requested from the agent.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`
	RebootRequestTime *metav1.MicroTime `json:"rebootRequestTime,omitempty"`

	// BootIDAfter is the boot ID that proved the reboot.
	// +optional
	BootIDAfter string `json:"bootIDAfter,omitempty"`

	// RebootRequestID is the value written to the node's reboot-request annotation.
	// +optional
	RebootRequestID string `json:"rebootRequestID,omitempty"`

	// Outcome is the terminal phase decided before cleanup (uncordon) ran.
	// +optional
	Outcome Phase `json:"outcome,omitempty"`

	// PhaseDurations records how long each finished phase took, in phase order.
	// +optional
	PhaseDurations []PhaseDuration `json:"phaseDurations,omitempty"`

	// MachineSet is the MachineSet expected to replace the deleted Machine.
	// +optional
	MachineSet string `json:"machineSet,omitempty"`

	// ReplacementMachine is the Machine that replaced the deleted one.
	// +optional
	ReplacementMachine string `json:"replacementMachine,omitempty"`
}

// PhaseDuration is how long one phase took.
type PhaseDuration struct {
	Phase    Phase    `json:"phase"`
	Duration Duration `json:"duration"`
}

// NodeCycle is one maintenance operation on one node: the record, the lock
// that keeps the cluster to one node at a time, and the state machine.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=nc;ncs,categories=nodecycle
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.clusterName`,priority=1
// +kubebuilder:printcolumn:name="Strategy",type=string,JSONPath=`.status.strategy`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeCycle struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is fixed when the NodeCycle is created: the node, its cluster and
	// Machine, and the settings. Editing it could move an operation out of
	// its cluster's slot count or point a replace at another Machine.
	// The manager fills in an on-demand request's spec once (strategies
	// empty before, set after), keeping the request (and nodeName, which
	// is immutable on its own); nothing else changes.
	// +kubebuilder:validation:XValidation:rule="has(oldSelf.request) && !has(oldSelf.strategies) ? (has(self.request) && self.request == oldSelf.request) : self == oldSelf",message="spec is immutable; delete the NodeCycle and let nodecycle open a new one"
	Spec   NodeCycleSpec   `json:"spec,omitempty"`
	Status NodeCycleStatus `json:"status,omitempty"`
}

// NodeCycleList is a list of NodeCycles.
// +kubebuilder:object:root=true
type NodeCycleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeCycle `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &NodeCycle{}, &NodeCycleList{})
}
