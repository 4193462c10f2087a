//go:build tools

// Package tools pins the CoreDNS server put into the kind node image
// (the version kubeadm v1.37.2 deploys).
package tools

import _ "github.com/coredns/coredns"
