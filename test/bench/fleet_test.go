package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/watch"
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

func (f *fleet) namespace(i int) string { return fmt.Sprintf("fleet-%02d", i/100) }
func (f *fleet) cluster(i int) string   { return fmt.Sprintf("c%04d", i) }
func (f *fleet) node(i, j int) string   { return fmt.Sprintf("c%04d-node-%02d", i, j) }
func (f *fleet) server(i int) server    { return f.servers[i%len(f.servers)] }

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
