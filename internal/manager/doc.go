// Package manager parses the manager's flags and wires its controller-runtime manager, for cmd/manager, tests and the sandbox alike.
package manager
