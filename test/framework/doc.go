// Package framework starts the real control plane for tests (kube-apiserver and etcd through envtest, kube-controller-manager and kube-scheduler as processes) and plays the kubelets of simulated nodes.
package framework
