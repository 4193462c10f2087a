package v1alpha1

// Reason is a CamelCase word that says why: the reason of a Node condition,
// of an Event, or of a NodeCycle's end. Every reason nodecycle writes is a
// constant below, with where it is written and what it means: docs/reference.md
// is generated from them (make docs). Changing one is a breaking change.
type Reason string

// Reasons of the RebootRequired condition (written by the agent).
const (
	// `RebootRequired=True`: the sentinel file exists.
	ReasonSentinelFilePresent Reason = "SentinelFilePresent"
	// `RebootRequired=True`: the sentinel command exited 0.
	ReasonSentinelCommandSucceeded Reason = "SentinelCommandSucceeded"
	// `RebootRequired=False`: no sentinel; published at agent start.
	ReasonNoRebootRequired Reason = "NoRebootRequired"
	// `RebootRequired=Unknown`: the check failed; the message has the error.
	ReasonSentinelCheckFailed Reason = "SentinelCheckFailed"
)

// Reasons of the MaintenanceInProgress condition (written by the manager).
// While it is True the reason is the step; each strategy names its own.
const (
	// (`MaintenanceInProgress`, not written): the node is being cordoned; the
	// step passes within one reconcile, so the condition is not written for it
	// (one Node write less per cycle).
	ReasonCordoning Reason = "Cordoning"
	// `MaintenanceInProgress=True`, `DrainInProgress=True`: its pods are being
	// evicted (the `Cordoned` Event says the drain begins; the message names
	// the pods left and what holds each: a PodDisruptionBudget, an eviction
	// responder).
	ReasonDraining Reason = "Draining"
	// Event: the agent was asked to reboot (the condition says
	// `WaitingForNodeReady` from then on).
	ReasonRebootRequested Reason = "RebootRequested"
	// `MaintenanceInProgress=True`: the machine is powered off and on through
	// its provider.
	ReasonPowerCycling Reason = "PowerCycling"
	// `MaintenanceInProgress=True`: waiting for a new boot ID and `Ready=True`.
	ReasonWaitingForNodeReady Reason = "WaitingForNodeReady"
	// (`MaintenanceInProgress`, not written): the node is returned to service;
	// as for `Cordoning`.
	ReasonUncordoning Reason = "Uncordoning"
	// `MaintenanceInProgress=True`: the drained node waits for pre-reboot hooks,
	// or the rebooted node for post-reboot hooks (see "Hooks"); the message
	// names them.
	ReasonWaitingForHooks Reason = "WaitingForHooks"
	// `MaintenanceInProgress=True`: the rebooted node waits for its DaemonSet
	// pods (or a selector's) to be Ready again and its startup taints to be
	// gone before the uncordon (see "Ready before the uncordon, healthy
	// before the next node").
	ReasonWaitingForPods Reason = "WaitingForPods"
	// `MaintenanceInProgress=True`: Cluster API: its Machine is being deleted.
	ReasonDeletingMachine Reason = "DeletingMachine"
	// `MaintenanceInProgress=True`: Cluster API: waiting for the replacement's
	// Node to be Ready.
	ReasonWaitingForReplacement Reason = "WaitingForReplacement"

	// `MaintenanceInProgress=False`, `DrainInProgress=False`, `Drained=False`:
	// a NodeCycle waits (slot, window, gate); `MaintenancePlanned=True` says
	// for what.
	ReasonMaintenancePending Reason = "MaintenancePending"
	// `MaintenanceInProgress`, `MaintenancePlanned`, `DrainInProgress`,
	// `Drained` all False: no NodeCycle works on the node any more (its
	// NodeCycle was deleted, or ended while the manager was away).
	ReasonNoMaintenance Reason = "NoMaintenance"
	// `MaintenanceInProgress=False`, Event: done and verified.
	ReasonMaintenanceCompleted Reason = "MaintenanceCompleted"
	// `MaintenanceInProgress=False`, Warning Event: failed; the message says
	// why.
	ReasonMaintenanceFailed Reason = "MaintenanceFailed"
	// `MaintenanceInProgress=False`, Event: ended before it started.
	ReasonMaintenanceSkipped Reason = "MaintenanceSkipped"
	// `MaintenanceInProgress=False`, Warning Event, `status.reason`: the ladder
	// names an unknown strategy, or `nodecycle.io/strategy` is malformed.
	ReasonInvalidStrategy Reason = "InvalidStrategy"
	// `MaintenanceInProgress=False`, Warning Event: the node needed a reboot
	// again right after each of its last `--quarantine-after` verified reboots;
	// it is not rebooted again (see "Reboot loops").
	ReasonQuarantined Reason = "Quarantined"
	// `MaintenanceInProgress=False`, Event: the quarantined node no longer asks
	// for a reboot on the same boot, or its last NodeCycle was deleted.
	ReasonQuarantineLifted Reason = "QuarantineLifted"
	// `MaintenanceInProgress=False`, Warning Event: the node's drain could not
	// finish and its drain.failure is SkipNode: it is not tried again on
	// this boot (see "Undrainable nodes").
	ReasonNodeSkipped Reason = "NodeSkipped"
	// `MaintenanceInProgress=False`, Event: the skipped node runs a new boot,
	// no longer asks for a reboot, or its failed NodeCycle was deleted.
	ReasonNodeSkipLifted Reason = "NodeSkipLifted"
)

// Reasons of the MaintenancePlanned condition, True while a NodeCycle waits
// for the node: what it waits for (the message says more and, for a window
// or a freeze, until when). False says `MaintenanceStarted` once the
// maintenance took its slot, then the end's reason.
const (
	// `MaintenancePlanned=True`: another node of the cluster (or of the
	// topology zone) holds the maintenance slot.
	ReasonWaitingForSlot Reason = "WaitingForSlot"
	// `MaintenancePlanned=True`: outside the maintenance windows; the message
	// says when the next opens.
	ReasonOutsideMaintenanceWindow Reason = "OutsideMaintenanceWindow"
	// `MaintenancePlanned=True`: nodecycle, the NodeCyclePolicy or the
	// Cluster API Cluster is paused.
	ReasonPaused Reason = "Paused"
	// `MaintenancePlanned=True`: the cluster settles after the last node's
	// maintenance (`settleTime`).
	ReasonSettling Reason = "Settling"
	// `MaintenancePlanned=True`: PodDisruptionBudgets of the node's pods are
	// not healthy.
	ReasonPodDisruptionBudgetsUnhealthy Reason = "PodDisruptionBudgetsUnhealthy"
	// `MaintenancePlanned=True`: a blocking alert fires, or Alertmanager
	// cannot say (fail closed).
	ReasonBlockingAlerts Reason = "BlockingAlerts"
	// `MaintenancePlanned=True`: a PromQL query of `blockingQueries` returns
	// samples (above its threshold, for its `for`); the message names the
	// query and the values.
	ReasonBlockingQuery Reason = "BlockingQuery"
	// `MaintenancePlanned=True`: a control-plane node waits until no worker of
	// its cluster is in or waiting for maintenance (`--control-planes-last`).
	ReasonWaitingForWorkers Reason = "WaitingForWorkers"
	// `MaintenancePlanned=True`: another control-plane node of the cluster does
	// not serve (not Ready, its etcd or kube-apiserver pod not Ready, or not an
	// endpoint of the kubernetes Service); the message names it and why.
	ReasonControlPlaneUnhealthy Reason = "ControlPlaneUnhealthy"
	// `MaintenancePlanned=True`: Prometheus did not answer a query of
	// `blockingQueries`, or the query failed (fail closed: what cannot be
	// checked is not known to be quiet).
	ReasonQueryUnavailable Reason = "QueryUnavailable"
	// `MaintenancePlanned=True`: a blocking pod runs on the node.
	ReasonBlockingPod Reason = "BlockingPod"
	// `MaintenancePlanned=True`: the node is not Ready yet, or its agent
	// pod is not (after a reboot).
	ReasonNodeNotReady Reason = "NodeNotReady"
)

// Reasons of Events about a node's maintenance (on the Node, or in Cluster
// API mode on its Machine).
const (
	// Event: a node needs a reboot; a NodeCycle was opened (or an on-demand
	// request was accepted).
	ReasonNodeCycleCreated Reason = "NodeCycleCreated"
	// Event, `MaintenancePlanned=False`: the NodeCycle took a maintenance
	// slot.
	ReasonMaintenanceStarted Reason = "MaintenanceStarted"
	// Event, `MaintenancePlanned=True`: a freeze holds the maintenance:
	// frozen until when, and why (the Event once per freeze).
	ReasonFrozen Reason = "Frozen"
	// Event: nodecycle cordoned the node.
	ReasonCordoned Reason = "Cordoned"
	// Event: someone else had cordoned it; it stays cordoned.
	ReasonAlreadyCordoned Reason = "AlreadyCordoned"
	// Event: a pod was evicted.
	ReasonEvicted Reason = "Evicted"
	// Event: the drain asked for a pod's eviction through an EvictionRequest
	// (see "Cooperative drains").
	ReasonEvictionRequested Reason = "EvictionRequested"
	// Event: a pod's eviction responder took over its eviction: who, since when,
	// its last heartbeat and message.
	ReasonEvictionResponder Reason = "EvictionResponder"
	// Event: the drain ended (timeout, refusal, NodeCycle deleted) with
	// EvictionRequests open; they were withdrawn.
	ReasonEvictionsWithdrawn Reason = "EvictionsWithdrawn"
	// Event, `Drained=True`, `DrainInProgress=False`: no pod left to evict.
	ReasonDrained Reason = "Drained"
	// Warning Event: the drain timeout passed with `deleteAfterTimeout`: the
	// pods left were deleted and the maintenance went on.
	ReasonPodsDeleted Reason = "PodsDeleted"
	// Event: the boot ID changed and the node is Ready.
	ReasonRebootVerified Reason = "RebootVerified"
	// Event: an in-place update's files are in place on the new boot, as the
	// agent checked them (see "Cluster API in-place updates").
	ReasonUpdateVerified Reason = "UpdateVerified"
	// Event: the provider was asked to power off.
	ReasonPowerOffRequested Reason = "PowerOffRequested"
	// Warning Event: soft power-off refused; cutting the power.
	ReasonSoftPowerOffRefused Reason = "SoftPowerOffRefused"
	// Warning Event: the soft-off timeout passed; power cut.
	ReasonHardPowerOff Reason = "HardPowerOff"
	// Event: the machine is off, on.
	ReasonPoweredOff Reason = "PoweredOff"
	// Event: the machine is off, on.
	ReasonPoweredOn Reason = "PoweredOn"
	// Event: Cluster API: skip-remediation put on the Machine.
	ReasonRemediationPaused Reason = "RemediationPaused"
	// Event: Cluster API: the Machine was deleted for its replacement.
	ReasonMachineDeleted Reason = "MachineDeleted"
	// Event: nodecycle lifted its cordon.
	ReasonUncordoned Reason = "Uncordoned"
	// Warning Event: a step timed out; the ladder's next strategy runs.
	ReasonEscalating Reason = "Escalating"
	// Event: Cluster API: opt-in removed; a NodeCycle that had not started was
	// deleted.
	ReasonWithdrawn Reason = "Withdrawn"
	// Warning Event: the node is selected by several policies, or one does not
	// parse.
	ReasonPolicyError Reason = "PolicyError"
	// Warning Event: Cluster API: the workload cluster cannot be reached.
	ReasonClusterUnreachable Reason = "ClusterUnreachable"
	// Warning Event: a NodeCyclePolicy cannot be used; its `Valid` condition
	// says why.
	ReasonInvalidPolicy Reason = "InvalidPolicy"
	// Warning Event: a notification could not be sent (receiver down, bad URL,
	// Secret missing); the maintenance goes on; the message names the receiver's
	// key, never its URL (see "Notifications").
	ReasonNotificationFailed Reason = "NotificationFailed"
	// Warning Event on the Cluster: Cluster API: applying the agent to a Cluster
	// labelled `nodecycle.io/agent=enabled` failed; retried with backoff.
	ReasonAgentInstallFailed Reason = "AgentInstallFailed"
	// Warning Event on the NodeCycleRemediation: Cluster API: every attempt of a
	// MachineHealthCheck's remediation failed, or its Machine has no node; the
	// message says why (see "Remediation for MachineHealthChecks").
	ReasonRemediationFailed Reason = "RemediationFailed"
)

// Reasons a NodeCycle failed or was skipped: its status.reason, and the
// reason of the Warning Event that says so.
const (
	// Warning Event, `status.reason`: the drain did not finish in time.
	ReasonDrainTimeout Reason = "DrainTimeout"
	// Warning Event, `status.reason`: pods the drain settings forbid evicting.
	ReasonDrainRefused Reason = "DrainRefused"
	// Warning Event: the drain could not finish and drain.failure is
	// LeaveCordoned: the node stays cordoned.
	ReasonLeftCordoned Reason = "LeftCordoned"
	// Warning Event, `status.reason`: the drain pod selector does not parse;
	// nothing was done to the node.
	ReasonInvalidDrainPodSelector Reason = "InvalidDrainPodSelector"
	// Warning Event, `status.reason`: pre-reboot hooks still held at the hook
	// timeout: nothing rebooted, the node uncordoned.
	ReasonPreRebootHookTimeout Reason = "PreRebootHookTimeout"
	// Warning Event, `status.reason`: post-reboot hooks still held at the hook
	// timeout: the node rebooted and stays cordoned until they are released.
	ReasonPostRebootHookTimeout Reason = "PostRebootHookTimeout"
	// Warning Event, `status.reason`: the pods of `waitForPods` were not Ready
	// on the new boot within its timeout; the node is uncordoned.
	ReasonPodsNotReady Reason = "PodsNotReady"
	// Warning Event, `status.reason`: a startup taint of `waitForPods` was
	// still on the rebooted node at its timeout; the node is uncordoned
	// (the taint keeps pods away until its owner removes it).
	ReasonStartupTaintsNotRemoved Reason = "StartupTaintsNotRemoved"
	// Warning Event, `status.reason`: no new boot and `Ready` in time.
	ReasonRebootTimeout Reason = "RebootTimeout"
	// Warning Event, `status.reason`: no Ready agent pod on the node.
	ReasonAgentNotReady Reason = "AgentNotReady"
	// Warning Event, `status.reason`: the power provider failed or cannot be
	// built.
	ReasonProviderError Reason = "ProviderError"
	// Warning Event, `status.reason`: the machine did not power off, on in time.
	ReasonPowerOffTimeout Reason = "PowerOffTimeout"
	// Warning Event, `status.reason`: the machine did not power off, on in time.
	ReasonPowerOnTimeout Reason = "PowerOnTimeout"
	// Warning Event, `status.reason`: the Node went away during the operation.
	ReasonNodeDeleted Reason = "NodeDeleted"
	// `status.reason`: Cluster API: no Ready replacement in time.
	ReasonReplaceTimeout Reason = "ReplaceTimeout"
	// Warning Event, `status.reason`: Cluster API: nothing would replace the
	// Machine.
	ReasonNoMachineSet Reason = "NoMachineSet"
	// `status.reason`: `replace` for a node without a Machine.
	ReasonNotAClusterAPINode Reason = "NotAClusterAPINode"
	// `status.reason`: Cluster API: the Cluster no longer exists.
	ReasonClusterDeleted Reason = "ClusterDeleted"
	// `status.reason`: the policy's gate does not parse.
	ReasonInvalidMaintenanceWindow Reason = "InvalidMaintenanceWindow"
	// `status.reason`: the policy's gate does not parse.
	ReasonInvalidBlockingPodSelector Reason = "InvalidBlockingPodSelector"
	// `status.reason`: a freeze of the policy or of the manager does not parse.
	ReasonInvalidFreeze Reason = "InvalidFreeze"
	// `status.reason`: a status edited into a phase the strategy does not have.
	ReasonUnknownPhase Reason = "UnknownPhase"
	// `status.reason`: a duration stored in the NodeCycle's spec is not one
	// (written before the CRD checked it); the node is left as it is, or
	// uncordoned if nodecycle had cordoned it.
	ReasonInvalidSpec Reason = "InvalidSpec"
	// `status.reason`: skipped: the node is excluded or not selected.
	ReasonExcluded Reason = "Excluded"
	// `status.reason`: skipped: the node is excluded or not selected.
	ReasonNotSelected Reason = "NotSelected"
	// `status.reason`: skipped: `RebootRequired` is no longer True.
	ReasonRebootNoLongerRequired Reason = "RebootNoLongerRequired"
	// Warning Event on the NodeCycle, `status.reason`: an on-demand request
	// names a node that does not exist, is excluded or not selected (not opted
	// in, in Cluster API mode), has another open NodeCycle, or a strategy its
	// policy does not allow; nothing was done (see "On-demand requests").
	ReasonRequestRefused Reason = "RequestRefused"
	// Warning Event, `status.reason`: the agent could not write an in-place
	// update's files (it did not reboot), or they were not in place on the new
	// boot; the node is uncordoned and Cluster API is told the update failed.
	ReasonUpdateFailed Reason = "UpdateFailed"
)

// Reasons of the NodeCyclePolicy condition Valid.
const (
	// NodeCyclePolicy condition `Valid`: whether the policy can be used.
	ReasonValid Reason = "Valid"
	// NodeCyclePolicy condition `Valid`: whether the policy can be used.
	ReasonInvalid Reason = "Invalid"
)
