//go:build tools

// Package tools pins the kind command used by make kind and make e2e.
package tools

import _ "sigs.k8s.io/kind"
