// Package sim holds the simulated peers of the sandbox and the tests: a
// kubelet that reboots Nodes (new boot ID, NotReady, Ready), Cluster API's
// own controllers in-process with a provisioner that makes Machines ready
// at once, and a timeline printer of what happens to Nodes, pods and
// NodeCycles. Nothing here runs in a real cluster.
package sim
