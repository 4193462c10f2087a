package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

var (
	capiOnce sync.Once
	capi     *sim.ClusterAPIControllers
	capiErr  error
	runs     int
)

// clusterAPI starts Cluster API's controllers in-process once per run.
func clusterAPI(b *testing.B) (*sim.ClusterAPIControllers, client.Client) {
	b.Helper()
	capiOnce.Do(func() { capi, capiErr = sim.StartClusterAPI(env.Config) })
	if capiErr != nil {
		b.Fatal(capiErr)
	}
	c, err := client.New(env.Config, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	return capi, c
}

// poll calls f until it returns nil or timeout passes.
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkReplaceMachine measures the replace strategy on Cluster API's
// own controllers: from RebootRequired=True on a node of a MachineDeployment
// annotated replace until the NodeCycle succeeded (the old Machine deleted,
// its replacement's Node Ready).
func BenchmarkReplaceMachine(b *testing.B) {
	ctx := context.Background()
	capi, c := clusterAPI(b)
	runs++ // the testing package calls a benchmark more than once
	ns, cluster := fmt.Sprintf("bench-replace-%d", runs), "bench"
	if _, err := capi.CreateCluster(ctx, ns, cluster, env.Config); err != nil {
		b.Fatal(err)
	}
	if _, err := capi.CreateControlPlaneMachine(ctx, ns, cluster, "bench-cp", nil); err != nil {
		b.Fatal(err)
	}
	if _, err := capi.CreateMachineDeployment(ctx, ns, cluster, "workers", 2, map[string]string{v1alpha1.AnnotationStrategy: "replace"}); err != nil {
		b.Fatal(err)
	}
	stop, _, err := framework.StartManager(env.Config, os.Stderr, "--cluster-api", "--agent-pod-selector=")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = stop() }()

	watching, err := client.NewWithWatch(env.Config, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	var total, waiting time.Duration
	b.ResetTimer()
	for i := range b.N {
		var ms []v1alpha1.NodeCycle
		machines, err := readyMachinesWithin(ctx, c, ns, "workers", 2)
		if err != nil {
			b.Fatal(err)
		}
		// The end is seen on a watch of the NodeCycles, not by polling.
		w, err := watching.Watch(ctx, &v1alpha1.NodeCycleList{}, client.InNamespace(ns))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err = sim.RequireReboot(ctx, c, machines[0].Status.NodeRef.Name); err != nil {
			b.Fatal(err)
		}
		succeeded, timeout := map[string]bool{}, time.After(3*time.Minute)
		for len(succeeded) < i+1 {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					b.Fatal("the watch of NodeCycles closed")
				}
				if nc, isCycle := ev.Object.(*v1alpha1.NodeCycle); isCycle && nc.Status.Phase == v1alpha1.PhaseSucceeded {
					succeeded[nc.Name] = true
				}
			case <-timeout:
				b.Fatalf("%d of %d NodeCycles succeeded within 3m", len(succeeded), i+1)
			}
		}
		total += time.Since(start)
		w.Stop()
		var list v1alpha1.NodeCycleList
		if err = c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		ms = list.Items
		for _, nc := range ms {
			if nc.Spec.MachineName != machines[0].Name {
				continue
			}
			for _, d := range nc.Status.PhaseDurations {
				if d.Phase == v1alpha1.PhaseWaitingForReplacement {
					waiting += d.Duration.Duration
				}
			}
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "replace-s")
	b.ReportMetric(waiting.Seconds()/float64(b.N), "wait-replacement-s")
}

func readyMachinesWithin(ctx context.Context, c client.Client, ns, md string, n int) (ms []clusterv1.Machine, err error) {
	err = poll(3*time.Minute, func() error {
		ms, err = sim.ReadyMachines(ctx, c, c, ns, md, n)
		return err
	})
	return ms, err
}

// BenchmarkManagerPerCluster measures the manager binary's memory per
// connected workload cluster: BENCH_CLUSTERS (default 8) workload clusters,
// each its own kube-apiserver and etcd, each with a MachineDeployment of
// BENCH_CLUSTER_NODES (default 10) Machines opted in with reboot.
func BenchmarkManagerPerCluster(b *testing.B) {
	ctx := context.Background()
	capi, c := clusterAPI(b)
	clusters, nodesPer := envInt("BENCH_CLUSTERS", 8), envInt("BENCH_CLUSTER_NODES", 10)
	bin := filepath.Join(b.TempDir(), "nodecycle-manager")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(localkube.RepoRoot(), "cmd", "manager")).CombinedOutput(); err != nil {
		b.Fatalf("building manager: %v\n%s", err, out)
	}
	kubeconfig, err := env.AdminKubeconfig()
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		metricsAddr := freeAddr(b)
		logPath := filepath.Join(b.TempDir(), "manager.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin, "--kubeconfig="+kubeconfig, "--cluster-api", "--leader-elect=false",
			"--metrics-bind-address="+metricsAddr, "--metrics-secure=false", "--health-probe-bind-address=0", "--agent-pod-selector=")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err = cmd.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		rss0, err := framework.ProcStatusKiB(cmd.Process.Pid, "VmRSS:")
		if err != nil {
			b.Fatal(err)
		}
		runs++
		ns := fmt.Sprintf("bench-fleet-%d", runs)
		var stops []func() error
		for i := range clusters {
			w, err := localkube.Start()
			if err != nil {
				b.Fatal(err)
			}
			name := fmt.Sprintf("fleet-%d", i)
			stops = append(stops, w.Stop, func() error { return capi.DeleteCluster(ctx, ns, name) })
			wc, err := client.New(w.Config, client.Options{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := capi.CreateCluster(ctx, ns, name, w.Config); err != nil {
				b.Fatal(err)
			}
			if _, err := capi.CreateMachineDeployment(ctx, ns, name, name, int32(nodesPer), map[string]string{v1alpha1.AnnotationStrategy: "reboot"}); err != nil {
				b.Fatal(err)
			}
			if err := poll(5*time.Minute, func() error {
				_, err := sim.ReadyMachines(ctx, c, wc, ns, name, nodesPer)
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
		// Measured only once the manager reads every cluster's Nodes: its
		// per-cluster gauge is there for each of them.
		if err := poll(3*time.Minute, func() error {
			resp, err := http.Get("http://" + metricsAddr + "/metrics")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			for i := range clusters {
				if want := fmt.Sprintf(`nodecycle_nodes_reboot_required{cluster="%s/fleet-%d"}`, ns, i); !strings.Contains(string(body), want) {
					return fmt.Errorf("not yet connected: no %s", want)
				}
			}
			return nil
		}); err != nil {
			out, _ := os.ReadFile(logPath)
			b.Fatalf("the manager did not connect to every cluster: %v\n%s", err, tail(string(out), 40))
		}
		rss, err1 := framework.ProcStatusKiB(cmd.Process.Pid, "VmRSS:")
		hwm, err2 := framework.ProcStatusKiB(cmd.Process.Pid, "VmHWM:")
		if err := errors.Join(err1, err2); err != nil {
			b.Fatal(err)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for i := len(stops) - 1; i >= 0; i-- {
			if err := stops[i](); err != nil {
				b.Log(err)
			}
		}
		b.ReportMetric(float64(clusters), "clusters")
		b.ReportMetric(float64(rss0)/1024, "rss-0-MiB")
		b.ReportMetric(float64(rss)/1024, "rss-MiB")
		b.ReportMetric(float64(hwm)/1024, "peak-MiB")
		b.ReportMetric(float64(rss-rss0)/1024/float64(clusters), "MiB/cluster")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// freeAddr is a loopback address with a port nobody listens on.
func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
