// Package cycles finds, names and opens NodeCycles: the shared work of the
// reconcilers that open them (Node in the local mode, Machine in Cluster API
// mode), including retries with backoff and undoing what a finished or
// vanished NodeCycle left behind.
package cycles
