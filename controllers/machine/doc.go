// Package machine opens a NodeCycle for each Cluster API Machine whose
// workload Node needs a reboot and whose MachineDeployment (or control
// plane) opts in with nodecycle.io/strategy (the Cluster API mode), and
// lifts a skip-remediation nodecycle left on a Machine.
package machine
