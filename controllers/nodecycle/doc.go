// Package nodecycle drives NodeCycles, one maintenance operation on one
// node each, through their phases:
//
//	Pending ─ admission.go: eligible, gates open, a slot of the cluster free
//	   │
//	Cordoning ─ cordon.go (and, for a Machine kept in place, skip-remediation)
//	   │
//	   ├─ in-place strategy ─ Draining (cordon.go) ─ strategy phases ─ Uncordoning ─ Succeeded | Failed
//	   │     reboot.go:     Rebooting → WaitingForNodeReady
//	   │     powercycle.go: PoweringOff → PoweringOn → WaitingForNodeReady
//	   │
//	   └─ replace.go: DeletingMachine → WaitingForReplacement ─ Succeeded | Failed
//
// A strategy that times out escalates to the next step of the NodeCycle's
// ladder (strategy.go) on the node as it is; without one the NodeCycle
// fails through Uncordoning. Skipped ends a NodeCycle that never started.
// Each reconcile changes the status in memory, saves it once with an
// optimistic lock (status.go), then publishes Events and the Node's
// MaintenanceInProgress condition.
package nodecycle
