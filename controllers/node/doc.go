// Package node opens a NodeCycle for each node of the manager's own cluster
// that needs a reboot (the local mode); the machine package does the same in
// Cluster API mode.
package node
