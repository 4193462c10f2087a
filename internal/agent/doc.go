// Package agent is the per-node agent: it notices that its node needs a reboot, publishes the RebootRequired condition and carries out reboot requests.
package agent
