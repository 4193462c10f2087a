// Package cluster is where a NodeCycle's node lives: the manager's own
// cluster (Local), or a Cluster API workload cluster reached through the
// manager's Connections from its kubeconfig Secret (ClusterAPI). The
// NodeCycle engine sees only Target.
package cluster
