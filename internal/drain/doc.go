// Package drain evicts the pods of a node one non-blocking step at a time, through the Eviction API.
package drain
