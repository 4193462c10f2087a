package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/kubeconfig"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// BenchmarkFleet measures the manager binary in a management cluster of
// FLEET_CLUSTERS (default 1000) workload clusters of FLEET_NODES (default
// 50) nodes each: its memory, and its detection latency (a node's
// RebootRequired=True until its NodeCycle is seen in the management
// cluster, over FLEET_SAMPLES nodes of different clusters). One fleet grows
// through three rows: FLEET_FIRST (default 100) clusters, all opted in;
// all the clusters, with only the first opted in; all opted in (a row
// that repeats the one before it is left out). With FLEET_MEMORY_LIMIT
// (say 1Gi) a last row runs the manager of the last one as its Deployment
// would with that memory limit: in a memory cgroup of that limit, with
// --memory-limit set to it (a soft limit of 90%).
//
// The workload clusters share FLEET_SERVERS (default 4) real API servers
// through framework.NodeViews, each cluster seeing its own Nodes. Cluster
// API's controllers do not run: the Clusters, MachineDeployments and
// Machines are written as they would leave them. The Clusters carry
// nodecycle.io/paused, so a detected node's NodeCycle waits and nothing is
// done to the node. FLEET_PROFILES names a directory for the manager's heap
// and goroutine profiles in each row. Run with `make bench-fleet`.
func BenchmarkFleet(b *testing.B) {
	ctx := context.Background()
	total, first := envInt("FLEET_CLUSTERS", 1000), envInt("FLEET_FIRST", 100)
	f := &fleet{nodes: envInt("FLEET_NODES", 50), samples: envInt("FLEET_SAMPLES", 100)}
	first = min(first, total)
	var err error
	if f.mgmt, err = localkube.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.mgmt.Stop() }()
	crds, err := sim.ClusterAPICRDs()
	if err != nil {
		b.Fatal(err)
	}
	if _, err = envtest.InstallCRDs(f.mgmt.Config, crds); err != nil {
		b.Fatal(err)
	}
	if f.c, err = client.NewWithWatch(unlimited(f.mgmt.Config), client.Options{Scheme: controllers.Scheme()}); err != nil {
		b.Fatal(err)
	}
	for range envInt("FLEET_SERVERS", 4) {
		stop, serverErr := f.addServer()
		defer stop()
		if serverErr != nil {
			b.Fatal(serverErr)
		}
	}
	f.bin = filepath.Join(b.TempDir(), "nodecycle-manager")
	if out, buildErr := exec.Command("go", "build", "-o", f.bin, filepath.Join(localkube.RepoRoot(), "cmd", "manager")).CombinedOutput(); buildErr != nil {
		b.Fatalf("building manager: %v\n%s", buildErr, out)
	}
	if f.kubeconfig, err = f.mgmt.AdminKubeconfig(); err != nil {
		b.Fatal(err)
	}

	type row struct {
		clusters, optedIn int
		memLimit          string
	}
	var rows []row
	for _, r := range []row{{first, first, ""}, {total, first, ""}, {total, total, ""}} {
		if len(rows) == 0 || rows[len(rows)-1] != r {
			rows = append(rows, r)
		}
	}
	if limit := os.Getenv("FLEET_MEMORY_LIMIT"); limit != "" {
		rows = append(rows, row{total, total, limit})
	}
	for _, r := range rows {
		if err := f.grow(ctx, r.clusters, r.optedIn); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("clusters=%d,opted-in=%d", r.clusters, r.optedIn)
		if r.memLimit != "" {
			name += ",memory-limit=" + r.memLimit
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				f.measure(ctx, b, r.optedIn, r.memLimit)
			}
		})
	}
}

type server struct {
	views *framework.NodeViews
	c     client.Client
}

// fleet is the management cluster and its workload clusters.
type fleet struct {
	mgmt            *localkube.Env
	c               client.WithWatch
	servers         []server
	bin, kubeconfig string
	nodes, samples  int
	// clusters and optedIn are how many exist and how many of them (the
	// first) are opted in.
	clusters, optedIn int
	round             int
}

// addServer starts a workload API server shared through NodeViews.
func (f *fleet) addServer() (stop func(), err error) {
	w, err := localkube.Start()
	if err != nil {
		return func() {}, err
	}
	views, err := framework.ServeNodeViews(w.Config)
	stop = func() {
		if views != nil {
			_ = views.Close()
		}
		_ = w.Stop()
	}
	if err != nil {
		return stop, err
	}
	wc, err := client.New(unlimited(w.Config), client.Options{})
	f.servers = append(f.servers, server{views: views, c: wc})
	return stop, err
}

func unlimited(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	return cfg
}

func (f *fleet) namespace(i int) string { return fmt.Sprintf("fleet-%02d", i/100) }
func (f *fleet) cluster(i int) string   { return fmt.Sprintf("c%04d", i) }
func (f *fleet) node(i, j int) string   { return fmt.Sprintf("c%04d-node-%02d", i, j) }
func (f *fleet) server(i int) server    { return f.servers[i%len(f.servers)] }

// grow adds clusters up to n and opts in the first optedIn.
func (f *fleet) grow(ctx context.Context, n, optedIn int) error {
	errs := make(chan error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				var err error
				if i >= f.clusters {
					err = f.addCluster(ctx, i, i < optedIn)
				} else if i >= f.optedIn && i < optedIn {
					err = f.optIn(ctx, i)
				}
				if err != nil {
					errs <- fmt.Errorf("cluster %s: %w", f.cluster(i), err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	f.clusters, f.optedIn = n, optedIn
	return errors.Join(all...)
}

func (f *fleet) optIn(ctx context.Context, i int) error {
	md := &clusterv1.MachineDeployment{}
	if err := f.c.Get(ctx, client.ObjectKey{Namespace: f.namespace(i), Name: f.cluster(i) + "-pool"}, md); err != nil {
		return err
	}
	patch := client.MergeFrom(md.DeepCopy())
	md.Annotations = map[string]string{v1alpha1.AnnotationStrategy: "reboot"}
	return f.c.Patch(ctx, md, patch)
}

// addCluster writes cluster i as Cluster API leaves a provisioned cluster:
// the Cluster with its kubeconfig Secret, a MachineDeployment, its
// Machines with their nodeRefs, and their Nodes in the workload cluster.
func (f *fleet) addCluster(ctx context.Context, i int, optedIn bool) error {
	ns, name := f.namespace(i), f.cluster(i)
	if err := f.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	cluster := &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		// Detected nodes' NodeCycles wait: the clusters share API servers.
		Annotations: map[string]string{v1alpha1.AnnotationPaused: "benchmark: detection only"},
	}, Spec: clusterv1.ClusterSpec{InfrastructureRef: clusterv1.ContractVersionedObjectReference{
		APIGroup: "infrastructure.cluster.x-k8s.io", Kind: "GenericInfrastructureCluster", Name: name,
	}}}
	if err := f.c.Create(ctx, cluster); err != nil {
		return err
	}
	kc, err := f.server(i).views.Kubeconfig(name)
	if err != nil {
		return err
	}
	if err := f.c.Create(ctx, kubeconfig.GenerateSecret(cluster, kc)); err != nil {
		return err
	}
	if err := sim.MarkProvisioned(ctx, f.c, cluster); err != nil {
		return err
	}
	now := metav1.Now()
	pool := name + "-pool"
	labels := map[string]string{clusterv1.ClusterNameLabel: name, clusterv1.MachineDeploymentNameLabel: pool}
	template := clusterv1.MachineSpec{
		ClusterName: name,
		Bootstrap:   clusterv1.Bootstrap{DataSecretName: ptr.To(pool + "-bootstrap")},
		InfrastructureRef: clusterv1.ContractVersionedObjectReference{
			APIGroup: "infrastructure.cluster.x-k8s.io", Kind: "GenericInfrastructureMachineTemplate", Name: pool,
		},
		Version: "v1.37.2",
	}
	md := &clusterv1.MachineDeployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pool},
		Spec: clusterv1.MachineDeploymentSpec{
			ClusterName: name, Replicas: ptr.To(int32(f.nodes)),
			Selector: metav1.LabelSelector{MatchLabels: labels},
			Rollout: clusterv1.MachineDeploymentRolloutSpec{Strategy: clusterv1.MachineDeploymentRolloutStrategy{
				Type: clusterv1.RollingUpdateMachineDeploymentStrategyType,
				RollingUpdate: clusterv1.MachineDeploymentRolloutStrategyRollingUpdate{
					MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0)),
				},
			}},
			Template: clusterv1.MachineTemplateSpec{ObjectMeta: clusterv1.ObjectMeta{Labels: labels}, Spec: template},
		},
	}
	if optedIn {
		md.Annotations = map[string]string{v1alpha1.AnnotationStrategy: "reboot"}
	}
	if err := f.c.Create(ctx, md); err != nil {
		return err
	}
	for j := range f.nodes {
		if err := f.addMachine(ctx, i, j, labels, template, now); err != nil {
			return err
		}
	}
	return nil
}

func (f *fleet) addMachine(ctx context.Context, i, j int, labels map[string]string, template clusterv1.MachineSpec, now metav1.Time) error {
	ns, cluster, nodeName := f.namespace(i), f.cluster(i), f.node(i, j)
	info := corev1.NodeSystemInfo{
		MachineID: fmt.Sprintf("%032x", i*1000+j), SystemUUID: fmt.Sprintf("%08x-0000-0000-0000-%012x", i, j),
		BootID: fmt.Sprintf("%08x-0000-0000-0000-%012x", j, i), KernelVersion: "6.1.0-27-amd64", OSImage: "Debian GNU/Linux 12 (bookworm)",
		ContainerRuntimeVersion: "containerd://1.6.20", KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64",
	}
	providerID := fmt.Sprintf("fleet://%s/%s", cluster, nodeName)
	m := &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-pool-%02d", cluster, j), Labels: labels},
		Spec:       *template.DeepCopy(),
	}
	m.Spec.ProviderID = providerID
	if err := f.c.Create(ctx, m); err != nil {
		return err
	}
	m.Status = clusterv1.MachineStatus{
		Initialization: clusterv1.MachineInitializationStatus{InfrastructureProvisioned: ptr.To(true), BootstrapDataSecretCreated: ptr.To(true)},
		NodeRef:        clusterv1.MachineNodeReference{Name: nodeName},
		NodeInfo:       &info,
		Phase:          string(clusterv1.MachinePhaseRunning),
		Addresses:      clusterv1.MachineAddresses{{Type: clusterv1.MachineInternalIP, Address: fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j)}},
	}
	for _, t := range []string{clusterv1.AvailableCondition, clusterv1.ReadyCondition, clusterv1.MachineUpToDateCondition,
		clusterv1.MachineBootstrapConfigReadyCondition, clusterv1.MachineInfrastructureReadyCondition, clusterv1.MachineNodeReadyCondition, clusterv1.MachineNodeHealthyCondition} {
		m.Status.Conditions = append(m.Status.Conditions, metav1.Condition{Type: t, Status: metav1.ConditionTrue, Reason: "Fine", LastTransitionTime: now})
	}
	if err := f.c.Status().Update(ctx, m); err != nil {
		return err
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName,
			Labels: map[string]string{framework.FleetClusterLabel: cluster, corev1.LabelHostname: nodeName, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"},
			Annotations: map[string]string{
				clusterv1.ClusterNameAnnotation: cluster, clusterv1.ClusterNamespaceAnnotation: ns, clusterv1.MachineAnnotation: m.Name,
				clusterv1.OwnerKindAnnotation: "MachineSet", clusterv1.OwnerNameAnnotation: cluster + "-pool",
				v1alpha1.AnnotationCheckedBoot: info.BootID, // the agent's check of this boot
			},
		},
		Spec: corev1.NodeSpec{ProviderID: providerID, PodCIDR: fmt.Sprintf("10.244.%d.0/24", j), PodCIDRs: []string{fmt.Sprintf("10.244.%d.0/24", j)}},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("7800m"), corev1.ResourceMemory: resource.MustParse("31Gi"), corev1.ResourcePods: resource.MustParse("110")},
			NodeInfo:    info,
			Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: m.Status.Addresses[0].Address}, {Type: corev1.NodeHostName, Address: nodeName}},
		},
	}
	for _, c := range []struct {
		t      corev1.NodeConditionType
		status corev1.ConditionStatus
	}{{corev1.NodeReady, corev1.ConditionTrue}, {corev1.NodeMemoryPressure, corev1.ConditionFalse}, {corev1.NodeDiskPressure, corev1.ConditionFalse},
		{corev1.NodePIDPressure, corev1.ConditionFalse}, {v1alpha1.ConditionRebootRequired, corev1.ConditionFalse}} {
		node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{Type: c.t, Status: c.status, Reason: "Fine", LastHeartbeatTime: now, LastTransitionTime: now})
	}
	return client.IgnoreAlreadyExists(f.server(i).c.Create(ctx, node))
}

// measure starts the manager (unless memLimit is "", in a memory cgroup of
// that limit with --memory-limit set to it), waits until it watches every
// opted-in cluster's Nodes and has reconciled every Machine, then samples
// detection.
func (f *fleet) measure(ctx context.Context, b *testing.B, optedIn int, memLimit string) {
	f.round++
	metricsAddr := freeAddr(b)
	logPath := filepath.Join(b.TempDir(), "manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	profilerAddr := freeAddr(b)
	argv := []string{f.bin, "--kubeconfig=" + f.kubeconfig, "--cluster-api", "--leader-elect=false",
		"--metrics-bind-address=" + metricsAddr, "--metrics-secure=false", "--health-probe-bind-address=0", "--agent-pod-selector=",
		"--profiler-address=" + profilerAddr}
	var cg *memoryCgroup
	var env []string
	if memLimit != "" {
		limit, parseErr := resource.ParseQuantity(memLimit)
		if parseErr != nil {
			b.Fatalf("FLEET_MEMORY_LIMIT: %v", parseErr)
		}
		if cg, err = newMemoryCgroup(fmt.Sprintf("nodecycle-fleet-%d", f.round), limit.Value()); err != nil {
			b.Fatal(err)
		}
		argv = cg.command(argv...)
		env = append(os.Environ(), fmt.Sprintf("NODECYCLE_MEMORY_LIMIT=%d", limit.Value())) // as the Deployment sets it
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Env = logFile, logFile, env
	start := time.Now()
	if err = cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
		if cg != nil {
			_ = cg.remove()
		}
	}()
	fail := func(err error) {
		out, _ := os.ReadFile(logPath)
		b.Fatalf("%v\n%s", err, tail(string(out), 40))
	}
	for deadline := time.Now().Add(20 * time.Minute); ; time.Sleep(time.Second) {
		select {
		case <-exited:
			fail(fmt.Errorf("the manager exited: %w", exitErr))
		default:
		}
		err = settled(metricsAddr, optedIn)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			fail(fmt.Errorf("the manager did not settle: %w", err))
		}
	}
	connected := time.Since(start)
	rss, err := framework.ProcStatusKiB(cmd.Process.Pid, "VmRSS:")
	if err != nil {
		b.Fatal(err)
	}
	if dir := os.Getenv("FLEET_PROFILES"); dir != "" {
		for _, profile := range []string{"heap", "goroutine"} {
			if err = saveProfile(profilerAddr, profile, filepath.Join(dir, fmt.Sprintf("%s-%d-%d%s.pprof", profile, f.clusters, optedIn, memLimit))); err != nil {
				b.Fatal(err)
			}
		}
	}
	latencies, err := f.detect(ctx, optedIn)
	if err != nil {
		fail(err)
	}
	rssAfter, err1 := framework.ProcStatusKiB(cmd.Process.Pid, "VmRSS:")
	hwm, err2 := framework.ProcStatusKiB(cmd.Process.Pid, "VmHWM:")
	// The heap is read after a collection (the profile endpoint's gc=1): what is live.
	err3 := saveProfile(profilerAddr, "heap", os.DevNull)
	m, err4 := scrape(metricsAddr)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		b.Fatal(err)
	}
	if err := f.reset(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(f.clusters), "clusters")
	b.ReportMetric(float64(optedIn), "opted-in")
	b.ReportMetric(float64(f.clusters*f.nodes), "nodes")
	b.ReportMetric(connected.Seconds(), "settle-s")
	b.ReportMetric(float64(max(rss, rssAfter))/1024, "rss-MiB")
	b.ReportMetric(float64(hwm)/1024, "peak-MiB")
	if cg != nil {
		peak, err := cg.peakBytes()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(peak)/(1<<20), "cgroup-peak-MiB")
	}
	b.ReportMetric(m.heapInUse/(1<<20), "live-heap-MiB")
	b.ReportMetric(m.goroutines, "goroutines")
	b.ReportMetric(framework.Millis(framework.Percentile(latencies, 0.5)), "detect-p50-ms")
	b.ReportMetric(framework.Millis(framework.Percentile(latencies, 0.99)), "detect-p99-ms")
}

// saveProfile writes one of the manager's profiles (heap after a
// collection, goroutine) for go tool pprof.
func saveProfile(profilerAddr, profile, path string) error {
	resp, err := http.Get("http://" + profilerAddr + "/debug/pprof/" + profile + "?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err = io.Copy(out, resp.Body); err != nil {
		return err
	}
	return out.Close()
}

// managerMetrics are what the fleet benchmark reads from the manager's /metrics.
type managerMetrics struct {
	// clusters have a reboot-required gauge: the manager watches their Nodes.
	clusters                  int
	machinesQueued, heapInUse float64
	goroutines                float64
}

func scrape(metricsAddr string) (managerMetrics, error) {
	m := managerMetrics{machinesQueued: -1}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		line := s.Text()
		value := func(v *float64) { _, _ = fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], v) }
		switch {
		case strings.HasPrefix(line, `nodecycle_nodes_reboot_required{cluster="fleet-`):
			m.clusters++
		case strings.HasPrefix(line, "workqueue_depth{") && strings.Contains(line, `name="nodecycle-machine"`):
			value(&m.machinesQueued)
		case strings.HasPrefix(line, "go_memstats_heap_inuse_bytes "):
			value(&m.heapInUse)
		case strings.HasPrefix(line, "go_goroutines "):
			value(&m.goroutines)
		}
	}
	return m, s.Err()
}

// settled: the manager watches the Nodes of want clusters and its Machine
// queue is empty.
func settled(metricsAddr string, want int) error {
	m, err := scrape(metricsAddr)
	if err != nil {
		return err
	}
	if m.clusters != want || m.machinesQueued != 0 {
		return fmt.Errorf("watching the Nodes of %d of %d clusters, %v Machines queued", m.clusters, want, m.machinesQueued)
	}
	return nil
}

// detect sets RebootRequired=True on one node in each of f.samples opted-in
// clusters, one after the other, and returns the time until each node's
// NodeCycle is seen.
func (f *fleet) detect(ctx context.Context, optedIn int) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := f.c.Watch(ctx, &v1alpha1.NodeCycleList{})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	seen := make(chan string, 16)
	go func() {
		for e := range w.ResultChan() {
			if nc, ok := e.Object.(*v1alpha1.NodeCycle); ok && e.Type == watch.Added {
				seen <- nc.Spec.NodeName
			}
		}
	}()
	n := min(f.samples, optedIn)
	var latencies []time.Duration
	for k := range n {
		i := k * optedIn / n
		name := f.node(i, (k+f.round)%f.nodes)
		start := time.Now()
		if err := setRebootRequired(ctx, f.server(i).c, name, corev1.ConditionTrue); err != nil {
			return nil, err
		}
		timeout := time.After(time.Minute)
	wait:
		for {
			select {
			case got := <-seen:
				if got == name {
					latencies = append(latencies, time.Since(start))
					break wait
				}
			case <-timeout:
				return nil, fmt.Errorf("no NodeCycle for node %s within a minute", name)
			}
		}
	}
	return latencies, nil
}

func setRebootRequired(ctx context.Context, c client.Client, name string, status corev1.ConditionStatus) error {
	node := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return err
	}
	now := metav1.Now()
	for k := range node.Status.Conditions {
		if cond := &node.Status.Conditions[k]; cond.Type == v1alpha1.ConditionRebootRequired {
			cond.Status, cond.LastHeartbeatTime, cond.LastTransitionTime = status, now, now
		}
	}
	return c.Status().Update(ctx, node)
}

// reset deletes the NodeCycles and clears RebootRequired where it was set.
func (f *fleet) reset(ctx context.Context) error {
	for i := 0; i < f.clusters; i += 100 {
		if err := f.c.DeleteAllOf(ctx, &v1alpha1.NodeCycle{}, client.InNamespace(f.namespace(i))); err != nil {
			return err
		}
	}
	var errs []error
	for _, s := range f.servers {
		var list corev1.NodeList
		if err := s.c.List(ctx, &list); err != nil {
			return err
		}
		for _, n := range list.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == v1alpha1.ConditionRebootRequired && c.Status == corev1.ConditionTrue {
					errs = append(errs, setRebootRequired(ctx, s.c, n.Name, corev1.ConditionFalse))
				}
			}
		}
	}
	return errors.Join(errs...)
}
