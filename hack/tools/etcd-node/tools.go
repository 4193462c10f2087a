//go:build tools

// Package tools pins the etcd server put into the kind node image: the
// version kubeadm v1.37.2 runs (3.7.0-0). Tests and the sandbox use
// hack/tools/etcd.
package tools

import _ "go.etcd.io/etcd/server/v3"
