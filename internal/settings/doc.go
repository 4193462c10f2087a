// Package settings holds what the manager does to which nodes: its flags, checked, and the spec of a new NodeCycle built from them and a NodeCyclePolicy.
package settings
