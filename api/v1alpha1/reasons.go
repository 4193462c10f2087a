package v1alpha1

// Reason is a CamelCase word that says why: the reason of a Node condition,
// of an Event, or of a NodeCycle's end. Every reason nodecycle writes is a
// constant below; the README's table "Reasons" lists the same set (a test
// holds the two together). Changing one is a breaking change.
type Reason string

// Reasons of the RebootRequired condition (written by the agent).
const (
	ReasonSentinelFilePresent      Reason = "SentinelFilePresent"
	ReasonSentinelCommandSucceeded Reason = "SentinelCommandSucceeded"
	ReasonNoRebootRequired         Reason = "NoRebootRequired"
	ReasonSentinelCheckFailed      Reason = "SentinelCheckFailed"
)

// Reasons of the MaintenanceInProgress condition (written by the manager).
// While it is True the reason is the step; each strategy names its own.
const (
	ReasonCordoning             Reason = "Cordoning"
	ReasonDraining              Reason = "Draining"
	ReasonRebootRequested       Reason = "RebootRequested"
	ReasonPowerCycling          Reason = "PowerCycling"
	ReasonWaitingForNodeReady   Reason = "WaitingForNodeReady"
	ReasonUncordoning           Reason = "Uncordoning"
	ReasonWaitingForHooks       Reason = "WaitingForHooks"
	ReasonWaitingForPods        Reason = "WaitingForPods"
	ReasonDeletingMachine       Reason = "DeletingMachine"
	ReasonWaitingForReplacement Reason = "WaitingForReplacement"

	ReasonMaintenancePending   Reason = "MaintenancePending"
	ReasonMaintenanceCompleted Reason = "MaintenanceCompleted"
	ReasonMaintenanceFailed    Reason = "MaintenanceFailed"
	ReasonMaintenanceSkipped   Reason = "MaintenanceSkipped"
	ReasonInvalidStrategy      Reason = "InvalidStrategy"
	ReasonQuarantined          Reason = "Quarantined"
	ReasonQuarantineLifted     Reason = "QuarantineLifted"
)

// Reasons of Events about a node's maintenance (on the Node, or in Cluster
// API mode on its Machine).
const (
	ReasonNodeCycleCreated   Reason = "NodeCycleCreated"
	ReasonMaintenanceStarted Reason = "MaintenanceStarted"
	ReasonCordoned           Reason = "Cordoned"
	ReasonAlreadyCordoned    Reason = "AlreadyCordoned"
	ReasonEvicted            Reason = "Evicted"
	// The drain through EvictionRequests: one asked for a pod, a pod's
	// eviction responder at work, the requests withdrawn when the drain
	// ended without its pods gone.
	ReasonEvictionRequested   Reason = "EvictionRequested"
	ReasonEvictionResponder   Reason = "EvictionResponder"
	ReasonEvictionsWithdrawn  Reason = "EvictionsWithdrawn"
	ReasonDrained             Reason = "Drained"
	ReasonPodsDeleted         Reason = "PodsDeleted"
	ReasonRebootVerified      Reason = "RebootVerified"
	ReasonUpdateVerified      Reason = "UpdateVerified"
	ReasonPowerOffRequested   Reason = "PowerOffRequested"
	ReasonSoftPowerOffRefused Reason = "SoftPowerOffRefused"
	ReasonHardPowerOff        Reason = "HardPowerOff"
	ReasonPoweredOff          Reason = "PoweredOff"
	ReasonPoweredOn           Reason = "PoweredOn"
	ReasonRemediationPaused   Reason = "RemediationPaused"
	ReasonMachineDeleted      Reason = "MachineDeleted"
	ReasonUncordoned          Reason = "Uncordoned"
	ReasonEscalating          Reason = "Escalating"
	ReasonWithdrawn           Reason = "Withdrawn"
	ReasonPolicyError         Reason = "PolicyError"
	ReasonClusterUnreachable  Reason = "ClusterUnreachable"
	ReasonInvalidPolicy       Reason = "InvalidPolicy"
	ReasonNotificationFailed  Reason = "NotificationFailed"
	ReasonAgentInstallFailed  Reason = "AgentInstallFailed"
	ReasonRemediationFailed   Reason = "RemediationFailed"
)

// Reasons a NodeCycle failed or was skipped: its status.reason, and the
// reason of the Warning Event that says so.
const (
	ReasonDrainTimeout               Reason = "DrainTimeout"
	ReasonDrainRefused               Reason = "DrainRefused"
	ReasonInvalidDrainPodSelector    Reason = "InvalidDrainPodSelector"
	ReasonPreRebootHookTimeout       Reason = "PreRebootHookTimeout"
	ReasonPostRebootHookTimeout      Reason = "PostRebootHookTimeout"
	ReasonPodsNotReady               Reason = "PodsNotReady"
	ReasonRebootTimeout              Reason = "RebootTimeout"
	ReasonAgentNotReady              Reason = "AgentNotReady"
	ReasonProviderError              Reason = "ProviderError"
	ReasonPowerOffTimeout            Reason = "PowerOffTimeout"
	ReasonPowerOnTimeout             Reason = "PowerOnTimeout"
	ReasonNodeDeleted                Reason = "NodeDeleted"
	ReasonReplaceTimeout             Reason = "ReplaceTimeout"
	ReasonNoMachineSet               Reason = "NoMachineSet"
	ReasonNotAClusterAPINode         Reason = "NotAClusterAPINode"
	ReasonClusterDeleted             Reason = "ClusterDeleted"
	ReasonInvalidMaintenanceWindow   Reason = "InvalidMaintenanceWindow"
	ReasonInvalidBlockingPodSelector Reason = "InvalidBlockingPodSelector"
	ReasonUnknownPhase               Reason = "UnknownPhase"
	ReasonInvalidSpec                Reason = "InvalidSpec"
	ReasonExcluded                   Reason = "Excluded"
	ReasonNotSelected                Reason = "NotSelected"
	ReasonRebootNoLongerRequired     Reason = "RebootNoLongerRequired"
	ReasonRequestRefused             Reason = "RequestRefused"
	ReasonUpdateFailed               Reason = "UpdateFailed"
)

// Reasons of the NodeCyclePolicy condition Valid.
const (
	ReasonValid   Reason = "Valid"
	ReasonInvalid Reason = "Invalid"
)
