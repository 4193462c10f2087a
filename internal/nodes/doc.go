// Package nodes reads Node conditions and makes the narrow writes nodecycle does to Nodes (cordon, annotations, its condition).
package nodes
