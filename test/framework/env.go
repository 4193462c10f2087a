package framework

import "github.com/nodecycle/nodecycle/internal/controlplane"

// Env is the control plane of a test run.
type Env = controlplane.Env

// Start runs kube-apiserver and etcd with the nodecycle CRDs.
func Start() (*Env, error) { return controlplane.Start() }

// RepoRoot is the directory of the nodecycle module.
func RepoRoot() string { return controlplane.RepoRoot() }
