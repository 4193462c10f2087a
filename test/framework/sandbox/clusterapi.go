package sandbox

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// A workload cluster of the Cluster API sandbox.
type workloadCluster struct {
	namespace, name, pool string
	strategy              v1alpha1.Strategy
	controlPlane          bool
	env                   *localkube.Env
	client                client.Client
}

// RunClusterAPI is the Cluster API sandbox: a management cluster (a real
// control plane) with Cluster API's core controllers in process and a
// provisioner playing the infrastructure provider, two workload clusters
// (each a real control plane of its own) whose MachineDeployments opt in
// with reboot ("alpha", namespace team-a) and replace ("beta", team-b), and
// the real manager in Cluster API mode. One node of each cluster needs a
// reboot; the timeline shows both clusters handled at once.
func RunClusterAPI(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	ctx, cancel := o.lifetime(ctx)
	defer cancel()
	out := sim.NewPrinter(o.Out)
	out.Say("Starting the management cluster's control plane and two workload clusters' (kube-apiserver and etcd each) on 127.0.0.1")
	var envs []*localkube.Env
	defer func() {
		cancel()
		for _, e := range envs {
			_ = e.Stop()
		}
		out.Say("Stopped; removed the clusters' directories")
	}()
	start := func() (*localkube.Env, error) {
		e, err := localkube.Start()
		if err == nil {
			envs = append(envs, e)
		}
		return e, err
	}
	mgmt, err := start()
	if err != nil {
		return nil, err
	}
	rep := &Report{Dir: mgmt.Dir, RunningOn: map[string]int{}}
	if rep.Kubeconfig, err = mgmt.AdminKubeconfig(); err != nil {
		return rep, err
	}
	clusters := []*workloadCluster{
		{namespace: "team-a", name: "alpha", pool: "alpha-workers", strategy: v1alpha1.StrategyReboot},
		{namespace: "team-b", name: "beta", pool: "beta-workers", strategy: v1alpha1.StrategyReplace, controlPlane: true},
	}
	for _, wc := range clusters {
		if wc.env, err = start(); err != nil {
			return rep, err
		}
		wc.client = wc.env.Client
	}
	out.Say("Starting Cluster API's controllers (Machine, MachineSet, MachineDeployment, MachineHealthCheck) in process")
	capi, err := sim.StartClusterAPI(mgmt.Config)
	if err != nil {
		return rep, err
	}
	defer capi.Stop()
	for _, wc := range clusters {
		if _, err = capi.CreateCluster(ctx, wc.namespace, wc.name, wc.env.Config); err != nil {
			return rep, err
		}
		if wc.controlPlane { // Cluster API drains a deleted Machine's Node only in a cluster with a control plane
			if _, err = capi.CreateControlPlaneMachine(ctx, wc.namespace, wc.name, wc.name+"-cp", nil); err != nil {
				return rep, err
			}
		}
		if _, err = capi.CreateMachineDeployment(ctx, wc.namespace, wc.name, wc.pool, 2, map[string]string{v1alpha1.AnnotationStrategy: string(wc.strategy)}); err != nil {
			return rep, err
		}
		cs, csErr := kubernetes.NewForConfig(wc.env.Config)
		if csErr != nil {
			return rep, csErr
		}
		k := &sim.Kubelet{Client: cs, Selector: labels.SelectorFromSet(labels.Set{sim.NodeLabel: "true"}), DownTime: o.DownTime, RebootOnRequest: true}
		go k.Run(ctx)
		out.Say("Cluster %s/%s: MachineDeployment %s of 2 Machines, annotated %s=%s", wc.namespace, wc.name, wc.pool, v1alpha1.AnnotationStrategy, wc.strategy)
	}
	machines := map[*workloadCluster][]clusterv1.Machine{}
	for _, wc := range clusters {
		if err = pollUntil(ctx, 2*time.Minute, func() (bool, error) {
			ms, notReady := sim.ReadyMachines(ctx, mgmt.Client, wc.client, wc.namespace, wc.pool, 2)
			machines[wc] = ms
			return notReady == nil, nil
		}); err != nil {
			return rep, fmt.Errorf("cluster %s: Machines not Ready: %w", wc.name, err)
		}
	}
	mgrDone, err := startManager(ctx, mgmt.Config, "--cluster-api", "--install-agent=false", "--agent-pod-selector=",
		"--drain-timeout=2m", "--reboot-timeout=2m", "--replace-timeout=3m")
	if err != nil {
		return rep, err
	}
	out.Say("Started the nodecycle manager in Cluster API mode (the simulated kubelets play the agents)")

	if !o.NoDemo {
		for _, wc := range clusters {
			node := machines[wc][0].Status.NodeRef.Name
			if err := sim.RequireReboot(ctx, wc.client, node); err != nil {
				return rep, err
			}
			out.Event(wc.name, "node %s (Machine %s) needs a reboot", node, machines[wc][0].Name)
		}
		if err := followClusters(ctx, mgmt.Client, out, rep, clusters); err != nil {
			return rep, err
		}
	}
	printClusterAPIUsage(o.Out, rep, clusters)
	return keepRunning(ctx, o, rep, mgrDone)
}

// followClusters prints each NodeCycle's phases and the Machines that come
// and go, until every NodeCycle has ended.
func followClusters(ctx context.Context, mgmt client.Client, out *sim.Printer, rep *Report, clusters []*workloadCluster) error {
	seen := map[string]v1alpha1.Phase{}
	machines := map[string]bool{}
	return pollUntil(ctx, 4*time.Minute, func() (bool, error) {
		done, total := 0, 0
		for _, wc := range clusters {
			var cycles v1alpha1.NodeCycleList
			if err := mgmt.List(ctx, &cycles, client.InNamespace(wc.namespace)); err != nil {
				return false, err
			}
			for _, nc := range cycles.Items {
				total++
				key := nc.Namespace + "/" + nc.Name
				if p := nc.Status.Phase; p != seen[key] {
					seen[key] = p
					out.Event(wc.name, "NodeCycle %s %s: %s", nc.Name, sim.Progress(p), nc.Status.Message)
				}
				if nc.Status.Phase.Terminal() {
					done++
				}
			}
			var ms clusterv1.MachineList
			if err := mgmt.List(ctx, &ms, client.InNamespace(wc.namespace), client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: wc.pool}); err != nil {
				return false, err
			}
			for _, m := range ms.Items {
				key := wc.namespace + "/" + m.Name
				if !machines[key] {
					machines[key] = true
					if len(seen) > 0 {
						out.Event(wc.name, "Machine %s created (the MachineSet's replacement)", m.Name)
					}
				}
				if !m.DeletionTimestamp.IsZero() && machines[key] {
					machines[key] = false
					out.Event(wc.name, "Machine %s deleted", m.Name)
				}
			}
		}
		if total > 0 && done == total {
			for _, wc := range clusters {
				var cycles v1alpha1.NodeCycleList
				if err := mgmt.List(ctx, &cycles, client.InNamespace(wc.namespace)); err != nil {
					return false, err
				}
				rep.Cycles = append(rep.Cycles, cycles.Items...)
			}
			sort.Slice(rep.Cycles, func(i, j int) bool { return rep.Cycles[i].Namespace < rep.Cycles[j].Namespace })
			return true, nil
		}
		return false, nil
	})
}

// pollUntil polls ok every 100ms until it says done, or the timeout passes.
func pollUntil(ctx context.Context, timeout time.Duration, ok func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		done, err := ok()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func printClusterAPIUsage(w io.Writer, rep *Report, clusters []*workloadCluster) {
	var b strings.Builder
	for _, wc := range clusters {
		fmt.Fprintf(&b, "  kubectl get secret -n %s %s-kubeconfig -o jsonpath='{.data.value}' | base64 -d > %s.kubeconfig   # then: kubectl --kubeconfig %s.kubeconfig get nodes\n",
			wc.namespace, wc.name, wc.name, wc.name)
	}
	fmt.Fprintf(w, `
The sandbox keeps running; stop it with Ctrl-C.

  export KUBECONFIG=%s   # the management cluster
  kubectl get clusters,machinedeployments,machines -A
  kubectl get nodecycles -A
  kubectl describe machine -n team-a
%s`, rep.Kubeconfig, b.String())
}
