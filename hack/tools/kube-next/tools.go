//go:build tools

// Package tools pins the control plane of the cooperative-drain tests:
// kube-apiserver and kube-controller-manager of the first Kubernetes
// release whose controller manager runs the evictionrequest-controller
// (EvictionRequests into Evictions) and the imperative evictor.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
