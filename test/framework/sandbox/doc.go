// Package sandbox runs nodecycle on a local cluster: a real control plane, nodes simulated by kwok, the real manager and one real agent per node, and a demo that reboots a worker while printing the timeline.
package sandbox
