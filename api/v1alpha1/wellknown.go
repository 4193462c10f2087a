package v1alpha1

// Names shared by the agent, the manager and the operator. They are the
// contract written down in docs/operations.md ("The contract on the Node")
// and listed in docs/reference.md;
// changing one is a breaking change.
const (
	// ConditionRebootRequired is the Node condition written only by the agent.
	ConditionRebootRequired = "RebootRequired"
	// ConditionMaintenanceInProgress is the Node condition written only by the manager.
	ConditionMaintenanceInProgress = "MaintenanceInProgress"
	// ConditionMaintenancePlanned is a Kubernetes node lifecycle condition
	// (core/v1 from Kubernetes 1.37, KEP-5683, "set and cleared by the
	// admin"), written only by the manager, in the same patch as
	// MaintenanceInProgress: True while a NodeCycle waits for the node, the
	// reason saying what it waits for.
	ConditionMaintenancePlanned = "MaintenancePlanned"
	// ConditionDrainInProgress is a Kubernetes node lifecycle condition
	// written only by the manager: True while nodecycle drains the node, the
	// message naming the pods left and what holds them.
	ConditionDrainInProgress = "DrainInProgress"
	// ConditionDrained is a Kubernetes node lifecycle condition written only
	// by the manager: True from the end of nodecycle's drain to the end of
	// the maintenance. The three, and MaintenanceInProgress, are False once
	// no NodeCycle works on the node.
	ConditionDrained = "Drained"
	// ConditionValid is the NodeCyclePolicy condition that says whether the
	// policy can be used.
	ConditionValid = "Valid"

	// AnnotationRebootRequest is set by the manager on a Node to ask its agent
	// for an in-place reboot; the value is an id unique to one request.
	AnnotationRebootRequest = "nodecycle.io/reboot-request"
	// AnnotationRebootSignature is set by the manager with the reboot
	// request: its signature for this node, request and update, with the
	// cluster's request key (internal/signing). The agent carries out no
	// request without a valid one.
	AnnotationRebootSignature = "nodecycle.io/reboot-request-signature"
	// AnnotationRebootAck is set by the agent to the id of the request it is
	// carrying out, before it reboots. It never reboots twice for one id.
	AnnotationRebootAck = "nodecycle.io/reboot-ack"
	// AnnotationUpdate is set by the manager, with the reboot request, when
	// the reboot applies an in-place update: the NodeCycle's spec.update as
	// JSON ({"id", "files"}). The agent writes the files before it
	// acknowledges the request; the uncordon removes it.
	AnnotationUpdate = "nodecycle.io/update"
	// AnnotationUpdateStatus is set by the agent: JSON {"id", "bootID",
	// "result" (Written, Verified or Failed), "message"} for the update in
	// AnnotationUpdate. Verified on the new boot is the proof the manager
	// waits for; Failed stops the NodeCycle.
	AnnotationUpdateStatus = "nodecycle.io/update-status"
	// AnnotationCheckedBoot is set by the agent to the boot ID (the
	// kubelet's status.nodeInfo.bootID) on which it last checked the
	// sentinel and wrote RebootRequired. The manager acts on RebootRequired
	// only when this is the node's current boot: a condition left from
	// before a reboot is never taken for a need of the new boot.
	AnnotationCheckedBoot = "nodecycle.io/checked-boot-id"
	// LabelDrain=skip on a Pod keeps the drain from evicting it: it goes
	// down with the node's reboot. nodecycle's manager carries it.
	LabelDrain = "nodecycle.io/drain"
	// FinalizerPowerOn is on a NodeCycle while its machine may be off:
	// deleting the NodeCycle powers the machine on first.
	FinalizerPowerOn = "nodecycle.io/power-on"
	// FinalizerWithdrawEvictions is on a NodeCycle while its drain has
	// EvictionRequests open: deleting the NodeCycle withdraws them first.
	FinalizerWithdrawEvictions = "nodecycle.io/withdraw-evictions"
	// AnnotationCordonedBy marks a cordon made by nodecycle; its value is the
	// NodeCycle (namespace/name) that made it. A cordon without it belongs to
	// someone else and is left alone.
	AnnotationCordonedBy = "nodecycle.io/cordoned-by"
	// AnnotationMaintenanceLabels lists (comma-separated) the label keys
	// nodecycle put on the Node with its cordon (a policy's hooks.labels);
	// the uncordon removes them and it.
	AnnotationMaintenanceLabels = "nodecycle.io/maintenance-labels"
	// AnnotationPaused holds new maintenance; its value says who paused
	// and why ("alice: change freeze until Monday"). On the manager's
	// Namespace it pauses all of nodecycle, on a NodeCyclePolicy that
	// policy's nodes, on a Cluster API Cluster that cluster. A maintenance
	// that has started finishes.
	AnnotationPaused = "nodecycle.io/paused"
	// AnnotationConnect on a Cluster API Cluster lets the manager connect
	// to its workload cluster. The manager sets it (value "true") the first
	// time it needs the cluster: an opted-in Machine, a NodeCycle, a
	// remediation, the agent label. It connects to no other Cluster, so its
	// memory grows with the clusters that use nodecycle, not with all of
	// them. Removing it disconnects the cluster until it is needed again.
	AnnotationConnect = "nodecycle.io/connect"
	// AnnotationDoNotDisrupt=true on a Pod keeps maintenance of its node
	// from starting while it runs (Karpenter's karpenter.sh/do-not-disrupt
	// convention); a maintenance that has started is not stopped by it.
	AnnotationDoNotDisrupt = "nodecycle.io/do-not-disrupt"
	// PrefixPreRebootHook: while the Node carries an annotation with this
	// prefix (another controller's own, such as
	// pre-reboot.hook.nodecycle.io/rook-ceph), the drained node is not
	// rebooted or power-cycled. Controllers add theirs when they see
	// MaintenanceInProgress=True and remove it when they are ready.
	PrefixPreRebootHook = "pre-reboot.hook.nodecycle.io/"
	// PrefixPostRebootHook: while the Node carries an annotation with this
	// prefix, the rebooted node is not uncordoned.
	PrefixPostRebootHook = "post-reboot.hook.nodecycle.io/"

	// AnnotationStrategy on a Cluster API MachineDeployment (or control-plane
	// object) opts its Machines' nodes in; the value is one strategy or a
	// comma-separated escalation ladder, e.g. "reboot,power-cycle,replace".
	AnnotationStrategy = "nodecycle.io/strategy"
	// AnnotationPriority (an integer, default 0) orders the NodeCycles that
	// wait for a maintenance slot: the highest first, then the oldest. On
	// a NodeCycle it is its own; on a Node it is copied into the node's
	// next NodeCycle when it is opened.
	AnnotationPriority = "nodecycle.io/priority"
	// AnnotationSkipRemediationBy marks Cluster API's skip-remediation
	// annotation on a Machine as nodecycle's; the value is the NodeCycle
	// (namespace/name). Only such a skip-remediation is ever removed.
	AnnotationSkipRemediationBy = "nodecycle.io/skip-remediation-by"
	// AnnotationBlockMove is clusterctl's block-move: clusterctl move waits
	// while a Machine carries it. nodecycle puts it on a Machine whose node
	// it reboots or power-cycles, with AnnotationBlockMoveBy (the NodeCycle)
	// marking it as its own; only such a block-move is ever removed.
	AnnotationBlockMove = "clusterctl.cluster.x-k8s.io/block-move"
	// AnnotationBlockMoveBy marks AnnotationBlockMove on a Machine as
	// nodecycle's; the value is the NodeCycle (namespace/name).
	AnnotationBlockMoveBy = "nodecycle.io/block-move-by"
	// LabelAgent=enabled on a Cluster API Cluster makes the manager install
	// the agent in its workload cluster (--install-agent).
	LabelAgent = "nodecycle.io/agent"

	// TaintMaintenancePending (effect PreferNoSchedule, no value) is on a
	// Node while its NodeCycle waits, with taintWhileWaiting.
	TaintMaintenancePending = "nodecycle.io/maintenance-pending"
	// LabelExclude opts a Node out when its value is "true".
	LabelExclude = "nodecycle.io/exclude"
)
