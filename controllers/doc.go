// Package controllers assembles nodecycle's manager from the reconcilers
// below it (nodecycle, node, machine, policy, remediation, agentinstall)
// and, in Cluster API mode, the in-place update extension: its flags
// (Options) and its wiring (New), for cmd/manager, the tests and the
// sandbox alike.
package controllers
