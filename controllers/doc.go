// Package controllers assembles nodecycle's manager from the reconcilers
// below it (nodecycle, node, machine, policy): its flags (Options) and its
// wiring (New), for cmd/manager, the tests and the sandbox alike.
package controllers
