// Package nodecycle drives NodeCycles, one maintenance operation on one
// node each, through their phases:
//
//	Pending ─ admission.go: checks in order (gates.go), a free slot (slots.go)
//	   │
//	Cordoning ─ cordon.go (and, for a Machine kept in place, skip-remediation)
//	   │
//	   ├─ in-place strategy ─ Draining (cordon.go) ─ strategy phases ─ proof.go ─ Uncordoning ─ Succeeded | Failed
//	   │     reboot.go:     Rebooting → WaitingForNodeReady
//	   │     powercycle.go: PoweringOff → PoweringOn → WaitingForNodeReady
//	   │
//	   └─ replace.go: DeletingMachine → WaitingForReplacement ─ Succeeded | Failed
//
// A strategy (strategy.go) tells the engine all it needs through its
// interface: its phases (PhaseSpec), one reconcile's work in them
// (Advance), and what to undo when the NodeCycle ends without it
// (Abandon). A strategy that times out escalates to the next step of the
// NodeCycle's ladder on the node as it is; without one the NodeCycle fails
// through Uncordoning. Skipped ends a NodeCycle that never started. Each
// reconcile works on a scope (scope.go): it changes the status in memory,
// saves it once with an optimistic lock (status.go), then publishes Events
// and the Node's MaintenanceInProgress condition.
package nodecycle
