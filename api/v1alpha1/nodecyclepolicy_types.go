package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeCyclePolicySpec says how the nodes it selects are brought through
// maintenance. Fields left out take the manager's flags.
type NodeCyclePolicySpec struct {
	// NodeSelector selects the nodes; an empty selector selects every node
	// the manager handles. A node selected by two policies is left alone
	// and a Warning Event says so.
	// +optional
	NodeSelector metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// Strategies is the escalation ladder, in order, e.g. [reboot, power-cycle].
	// Each strategy appears at most once.
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	// +kubebuilder:default={reboot}
	// +optional
	Strategies []Strategy `json:"strategies,omitempty"`

	// DrainTimeout bounds the drain.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('720h')",message="must be a duration from 1s to 720h"
	DrainTimeout *Duration `json:"drainTimeout,omitempty"`

	// DrainPodSelector, DrainSkipWaitForDeleteTimeoutSeconds and
	// DrainDeleteAfterTimeout set the NodeCycle's drain escape hatches
	// (spec.drain.podSelector, skipWaitForDeleteTimeoutSeconds,
	// deleteAfterTimeout) for the policy's nodes.
	// +optional
	DrainPodSelector *metav1.LabelSelector `json:"drainPodSelector,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	DrainSkipWaitForDeleteTimeoutSeconds *int64 `json:"drainSkipWaitForDeleteTimeoutSeconds,omitempty"`
	// +optional
	DrainDeleteAfterTimeout *bool `json:"drainDeleteAfterTimeout,omitempty"`

	// DrainEvictionRequests sets the NodeCycle's drain.evictionRequests:
	// Auto, Always or Never.
	// +optional
	DrainEvictionRequests EvictionRequestsMode `json:"drainEvictionRequests,omitempty"`

	// DrainFailure sets the NodeCycle's drain.failure: Uncordon,
	// LeaveCordoned or SkipNode.
	// +optional
	DrainFailure DrainFailureAction `json:"drainFailure,omitempty"`

	// RebootTimeout bounds the wait for a new boot ID and Ready after a
	// reboot request or a power-on.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('720h')",message="must be a duration from 1s to 720h"
	RebootTimeout *Duration `json:"rebootTimeout,omitempty"`

	// PowerCycle configures the provider of the power-cycle strategy.
	// +optional
	PowerCycle *PowerCycleSpec `json:"powerCycle,omitempty"`

	// Hooks: the wait for other controllers' hook annotations and the
	// labels of a node in maintenance.
	// +optional
	Hooks *HookSpec `json:"hooks,omitempty"`

	// WaitForPods: the pods that must be Ready, and the taints that must be
	// gone, on a rebooted node before it is uncordoned. Default: the
	// manager's --wait-for-daemonset-pods, --startup-taints and
	// --wait-for-pods-timeout; a startupTaints or timeout left out here is
	// the manager's, and `waitForPods: {}` waits for no pod.
	// +optional
	WaitForPods *PodsReadySpec `json:"waitForPods,omitempty"`

	// Gates hold when maintenance may start.
	Gates `json:",inline"`
}

// Gates say when maintenance of a node may start. They are checked before
// a NodeCycle takes its maintenance slot; an operation that has started
// finishes even if a window closes meanwhile.
type Gates struct {
	// MaintenanceWindows, when set, allow starting only inside one of them.
	// +optional
	MaintenanceWindows []MaintenanceWindow `json:"maintenanceWindows,omitempty"`

	// Freezes: no new maintenance starts inside one of these periods (a
	// change freeze); a maintenance past its cordon finishes. A NodeCycle
	// reads the freezes of its policy as the policy is now, so that a
	// freeze added or lifted applies at once, and those of the manager
	// (--freeze). Windows and freezes compose: both must allow.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Freezes []Freeze `json:"freezes,omitempty"`

	// BlockingPodSelectors: while a pod on the node matches one of them,
	// maintenance of the node does not start.
	// +optional
	BlockingPodSelectors []metav1.LabelSelector `json:"blockingPodSelectors,omitempty"`

	// BlockingAlerts: while Alertmanager has an active, unsilenced alert
	// that matches, maintenance does not start. When Alertmanager cannot be
	// asked, maintenance does not start either.
	// +optional
	BlockingAlerts *AlertGate `json:"blockingAlerts,omitempty"`

	// BlockingQueries: while one of these PromQL queries returns a sample
	// (above its threshold, when set) for at least its `for`, maintenance
	// does not start; the NodeCycle names the query and the values. When
	// Prometheus cannot be asked, or the query fails, maintenance does not
	// start either.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	BlockingQueries []QueryGate `json:"blockingQueries,omitempty"`

	// SettleTime: a node's maintenance starts at least this long after the
	// last maintenance in its cluster ended, so that what it disturbed
	// settles first. Default: the manager's --settle-time (0, none).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('720h')",message="must be a duration up to 720h"
	SettleTime *Duration `json:"settleTime,omitempty"`

	// WaitForHealthyPodDisruptionBudgets: a node's maintenance starts only
	// while every PodDisruptionBudget of its cluster is healthy
	// (status.currentHealthy >= status.desiredHealthy): the pods evicted
	// from the last node are back before the next node is drained. Default:
	// the manager's --wait-for-healthy-pdbs (false).
	// +optional
	WaitForHealthyPodDisruptionBudgets *bool `json:"waitForHealthyPodDisruptionBudgets,omitempty"`

	// TaintWhileWaiting: while a node waits for its maintenance (Pending),
	// it carries the taint nodecycle.io/maintenance-pending:PreferNoSchedule,
	// so that pods evicted from other nodes do not land on it just before
	// its own drain; the cordon takes it off. Default: the manager's
	// --taint-waiting-nodes (false).
	// +optional
	TaintWhileWaiting *bool `json:"taintWhileWaiting,omitempty"`
}

// Freeze is a period in which no new maintenance starts. It lasts at most
// 31 days unless marked long, which catches a mistyped year.
// +kubebuilder:validation:XValidation:rule="!self.start.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$') || !self.end.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$') || timestamp(self.end) > timestamp(self.start)",message="end must be after start"
// +kubebuilder:validation:XValidation:rule="!self.start.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$') || !self.end.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$') || (has(self.long) && self.long) || timestamp(self.end) - timestamp(self.start) <= duration('744h')",message="a freeze of more than 31 days needs long: true"
type Freeze struct {
	// Start is RFC 3339 with its offset from UTC: 2026-12-19T18:00:00+01:00.
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')",message="must be an RFC 3339 time with its offset, e.g. 2026-12-19T18:00:00+01:00"
	Start string `json:"start"`
	// End is RFC 3339 with its offset from UTC; maintenance may start again
	// from then.
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$')",message="must be an RFC 3339 time with its offset, e.g. 2027-01-04T08:00:00+01:00"
	End string `json:"end"`
	// Reason is shown while the freeze holds maintenance: "frozen until
	// <end>: <reason>".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Reason string `json:"reason"`
	// Long allows a freeze of more than 31 days.
	// +optional
	Long bool `json:"long,omitempty"`
}

// AlertGate names an Alertmanager and the alerts that block maintenance.
type AlertGate struct {
	// AlertmanagerURL is the base URL, e.g. http://alertmanager.monitoring:9093.
	// +kubebuilder:validation:Pattern=`^https?://`
	AlertmanagerURL string `json:"alertmanagerURL"`
	// Matchers select the blocking alerts, in Alertmanager's filter syntax
	// (severity="critical", alertname=~"Node.*"); all must match. Empty
	// means every active alert blocks.
	// +optional
	Matchers []string `json:"matchers,omitempty"`
}

// QueryGate is a PromQL query whose samples hold new maintenance.
type QueryGate struct {
	// PrometheusURL is the base URL of a Prometheus-compatible query API
	// (Prometheus, Thanos Query, Mimir's /prometheus), e.g.
	// http://prometheus.monitoring:9090.
	// +kubebuilder:validation:Pattern=`^https?://`
	// +kubebuilder:validation:MaxLength=512
	PrometheusURL string `json:"prometheusURL"`
	// Query is an instant PromQL expression: each series it returns is a
	// reason not to start.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`
	// Threshold: only samples above it hold maintenance; unset, any sample
	// does. A decimal number such as 0.5 or 1e-3.
	// +optional
	// +kubebuilder:validation:Pattern=`^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=64
	Threshold string `json:"threshold,omitempty"`
	// For: a series holds maintenance only once it has been returned (above
	// the threshold) at every step of the last `for`, as an alerting rule's
	// `for`; 0 or unset: at the moment of the check.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="must be a duration up to 24h"
	For *Duration `json:"for,omitempty"`
}

// MaintenanceWindow is a daily time range on some days of the week. A range
// whose end is before its start runs past midnight into the next day.
type MaintenanceWindow struct {
	// Days of the week the window opens; empty means every day.
	// +optional
	Days []Weekday `json:"days,omitempty"`
	// Start is HH:MM, 24-hour clock.
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	Start string `json:"start"`
	// End is HH:MM, 24-hour clock.
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	End string `json:"end"`
	// TimeZone is an IANA time zone such as Europe/Berlin; default UTC.
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
}

// Weekday is a day of the week.
// +kubebuilder:validation:Enum=Mon;Tue;Wed;Thu;Fri;Sat;Sun
type Weekday string

// PowerCycleSpec says how to reach the machines' power control.
type PowerCycleSpec struct {
	// Provider is the power provider.
	// +kubebuilder:validation:Enum=vsphere;ipmi;redfish;libvirt;virtualbox
	Provider string `json:"provider"`

	// Endpoint is the vCenter SDK URL (vsphere), the libvirt socket
	// (unix:///run/libvirt/libvirt-sock or tcp://host:16509). VirtualBox
	// takes none (the manager runs VBoxManage from its own PATH); IPMI and
	// Redfish take each node's BMC from machines.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// Machines maps a node's name to its machine: the BMC (host[:port] for
	// ipmi, https://host[:port] for redfish) or the VM (name or UUID for
	// vsphere, libvirt, virtualbox). A node not listed is found by its
	// spec.providerID (vsphere://, libvirt://, virtualbox://). Nothing the
	// node itself can write (annotations, status) chooses its machine.
	// In a NodeCycle it holds the node's entry only.
	// +optional
	// +kubebuilder:validation:MaxProperties=10000
	Machines map[string]string `json:"machines,omitempty"`

	// CredentialsSecretRef names a Secret in the policy's namespace with the
	// keys username and password.
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`

	// InsecureSkipVerify accepts any TLS certificate (vCenter, Redfish).
	// Prefer caBundle: without verification anyone on the path can take
	// the credentials.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`

	// CABundle is the PEM certificate(s) of the authority that signed the
	// vCenter's or the BMCs' TLS certificates (a self-signed certificate is
	// its own authority). Without it the manager's system roots are used.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	CABundle string `json:"caBundle,omitempty"`

	// Options are provider settings: cipherSuite (ipmi, default 3), uri
	// (libvirt, default qemu:///system).
	// +optional
	Options map[string]string `json:"options,omitempty"`

	// SoftOffTimeout is how long a soft power-off (guest or ACPI shutdown)
	// may take before the power is cut.
	// +kubebuilder:default="2m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('720h')",message="must be a duration from 0s to 720h"
	SoftOffTimeout Duration `json:"softOffTimeout,omitempty"`

	// PowerTimeout bounds each wait for the machine to be off, and to be on.
	// +kubebuilder:default="5m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('720h')",message="must be a duration from 0s to 720h"
	PowerTimeout Duration `json:"powerTimeout,omitempty"`
}

// SecretReference names a Secret.
type SecretReference struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// NodeCyclePolicyStatus reports whether the policy can be used.
type NodeCyclePolicyStatus struct {
	// Conditions: Valid says whether the selector, the provider and its
	// Secret are usable.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NodeCyclePolicy says how a set of nodes is handled: the strategy ladder,
// timeouts and the power provider with its credentials.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ncp,categories=nodecycle
// +kubebuilder:printcolumn:name="Strategies",type=string,JSONPath=`.spec.strategies`
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.powerCycle.provider`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeCyclePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeCyclePolicySpec   `json:"spec,omitempty"`
	Status NodeCyclePolicyStatus `json:"status,omitempty"`
}

// NodeCyclePolicyList is a list of NodeCyclePolicies.
// +kubebuilder:object:root=true
type NodeCyclePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeCyclePolicy `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &NodeCyclePolicy{}, &NodeCyclePolicyList{})
}
