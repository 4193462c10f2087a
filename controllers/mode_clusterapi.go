package controllers

import (
	"context"
	"fmt"

	"k8s.io/client-go/rest"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers/agentinstall"
	"github.com/nodecycle/nodecycle/controllers/machine"
	"github.com/nodecycle/nodecycle/controllers/nodecycle"
	"github.com/nodecycle/nodecycle/controllers/remediation"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/inplace"
)

// clusterAPIMode handles the nodes of every workload Cluster of a Cluster
// API management cluster (--cluster-api).
type clusterAPIMode struct{ o *Options }

// check implements mode.
func (clusterAPIMode) check(cfg *rest.Config) error { return requireClusterAPI(cfg) }

// cache implements mode: NodeCycles in each Cluster's namespace, and the
// Machines (only in this mode: a local cluster need not serve them at all).
func (clusterAPIMode) cache(byObject map[client.Object]cache.ByObject) {
	byObject[&v1alpha1.NodeCycle{}] = cache.ByObject{}
	byObject[&clusterv1.Machine{}] = cache.ByObject{Transform: cluster.StripMachine}
}

// requireClusterAPI checks, before the manager's caches are set up for
// them, that the cluster serves Cluster API's kinds.
func requireClusterAPI(cfg *rest.Config) error {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return err
	}
	for _, kind := range []string{"Cluster", "Machine", "MachineDeployment"} {
		gvk := clusterv1.GroupVersion.WithKind(kind)
		if _, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return fmt.Errorf("--cluster-api: this cluster does not serve Cluster API's %s (%s); install Cluster API %s or run without --cluster-api: %w", kind, gvk.GroupVersion(), clusterv1.GroupVersion.Version, err)
		}
	}
	return nil
}

// setup implements mode: Connections reach the workload clusters, the
// machine reconciler opens NodeCycles for opted-in Machines (and resolves
// on-demand requests), the remediation reconciler for MachineHealthChecks,
// and the agent is installed where asked. The Nodes are the workload
// clusters' (indexed in their caches): an index here would start an
// informer on the management cluster's own Nodes, which the manager may
// not list there.
func (m clusterAPIMode) setup(_ context.Context, mgr ctrl.Manager, opener cycles.Opener) (cluster.Clusters, nodecycle.Resolver, error) {
	o := m.o
	// Kubeconfig Secrets are read live when a cluster connects; no Secret is cached.
	conns := cluster.NewConnections(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetScheme(), cluster.ConnectionDefaults(cluster.ConnectionOptions{
		QPS: float32(o.QPS), Burst: o.Burst, UserAgent: "nodecycle-manager",
	}))
	if err := conns.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: 10}); err != nil {
		return nil, nil, fmt.Errorf("setting up the workload cluster connections: %w", err)
	}
	capi := cluster.NewClusterAPI(mgr.GetClient(), conns, opener.Recorder)
	if err := capi.StopWithManager(mgr); err != nil {
		return nil, nil, err
	}
	mr := &machine.Reconciler{
		Opener:        opener,
		Clusters:      capi,
		ClusterSource: conns.Source(machine.ClusterMachines(mgr.GetClient())),
	}
	if o.InstallAgent {
		ai := &agentinstall.Reconciler{Client: mgr.GetClient(), Clusters: capi, Recorder: opener.Recorder, Image: o.AgentImage,
			ClusterSource: conns.Source(func(_ context.Context, c client.Object) []ctrl.Request {
				return []ctrl.Request{{NamespacedName: client.ObjectKeyFromObject(c)}}
			})}
		if err := ai.SetupWithManager(mgr); err != nil {
			return nil, nil, err
		}
	}
	if o.InPlace.Port != 0 {
		ext := &inplace.Extension{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Ladders: mr, Workloads: capi, Rules: inplace.Rules{Paths: o.InPlace.Paths},
			Poll: o.InPlace.Poll, Log: mgr.GetLogger().WithName("in-place-updates")}
		if err := inplace.Serve(mgr, o.InPlace.Port, o.InPlace.CertDir, o.InPlace.ClientCA, ext); err != nil {
			return nil, nil, fmt.Errorf("setting up the in-place update extension: %w", err)
		}
	}
	rr := &remediation.Reconciler{Opener: opener, Clusters: capi,
		ClusterSource: conns.Source(remediation.InCluster(mgr.GetClient()))}
	if err := rr.SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	return capi, mr, mr.SetupWithManager(mgr)
}
