// Package controllers holds the manager's reconcilers: NodeReconciler opens a NodeCycle for each node that needs a reboot, NodeCycleReconciler drives each NodeCycle through its state machine, one node at a time per cluster.
package controllers
