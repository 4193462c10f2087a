// Package nodes reads Node conditions and builds the narrow patches nodecycle writes to Nodes.
package nodes
