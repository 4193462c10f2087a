// Package bench measures nodecycle against a real API server: detection
// latency, the manager's dead time between nodes, and the agent's idle cost.
// Run with `make bench`; results are copied into docs/benchmarks.md.
package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

var env *localkube.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run()) // no benchmark asked for: no control plane needed
	}
	logf.SetLogger(logr.Discard())
	var err error
	env, err = localkube.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// BenchmarkDetectionLatency: sentinel file created -> RebootRequired=True
// seen through a watch on the API server, 100 trials.
func BenchmarkDetectionLatency(b *testing.B) {
	ctx := context.Background()
	const node, trials = "bench-detect", 100
	if err := sim.CreateNode(ctx, env.Clientset, node, nil); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	defer startAgent(b, node, dir, "true")()
	sentinel := filepath.Join(dir, "reboot-required")

	w, err := env.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", node).String()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	// A watch that closes, or a condition that never comes, fails the
	// benchmark instead of giving a number for nothing.
	waitFor := func(want corev1.ConditionStatus) {
		b.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					b.Fatalf("the watch closed while waiting for RebootRequired=%s", want)
				}
				if n, isNode := ev.Object.(*corev1.Node); isNode {
					if c := nodes.Condition(n, v1alpha1.ConditionRebootRequired); c != nil && c.Status == want {
						return
					}
				}
			case <-timeout:
				b.Fatalf("RebootRequired=%s not seen within 30s", want)
			}
		}
	}
	waitFor(corev1.ConditionFalse)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		lat = lat[:0]
		for range trials {
			start := time.Now()
			if err := os.WriteFile(sentinel, nil, 0o644); err != nil {
				b.Fatal(err)
			}
			waitFor(corev1.ConditionTrue)
			lat = append(lat, time.Since(start))
			if err := os.Remove(sentinel); err != nil {
				b.Fatal(err)
			}
			waitFor(corev1.ConditionFalse)
		}
	}
	b.ReportMetric(framework.Millis(framework.Percentile(lat, 0.5)), "p50-ms")
	b.ReportMetric(framework.Millis(framework.Percentile(lat, 0.99)), "p99-ms")
	b.ReportMetric(framework.Millis(framework.Percentile(lat, 1)), "max-ms")
}

// BenchmarkManagerDeadTime: a 10-node roll with real agents and the
// simulated kubelet; dead time is from node N uncordoned to node N+1
// cordoned, read from one watch of every Node update.
func BenchmarkManagerDeadTime(b *testing.B) {
	const nodeCount = 10
	var dead []time.Duration
	var total time.Duration
	for range b.N {
		runs++ // the testing package calls a benchmark more than once
		d, t := roll(b, fmt.Sprintf("bench-roll-%d", runs), nodeCount, nil, nil, 0)
		dead, total = append(dead, d...), t
	}
	b.ReportMetric(framework.Millis(framework.Percentile(dead, 0.5)), "dead-p50-ms")
	b.ReportMetric(framework.Millis(framework.Percentile(dead, 1)), "dead-max-ms")
	b.ReportMetric(total.Seconds(), "roll-s")
}

// BenchmarkSentinelToCordon: the seed's scenario, one node of a cluster
// needs a reboot while the manager runs idle. From the sentinel file
// written on the node to the node cordoned, seen through a watch: the
// agent's detection, the NodeCycle's creation, its admission and the
// cordon. Ten nodes with real agents and the simulated kubelet, one after
// the other (each waits until the one before is uncordoned, so the
// manager is idle again and no node reboots twice). The time is split,
// from watches of the Nodes and the NodeCycles, into detect (sentinel ->
// RebootRequired=True), open (-> the NodeCycle created), admit (-> its
// phase Cordoning) and cordon (-> the node unschedulable).
func BenchmarkSentinelToCordon(b *testing.B) { sentinelToCordon(b, nil) }

// sentinelToCordon runs the seed's scenario b.N times; before, when set,
// prepares each run's namespace before the manager starts.
func sentinelToCordon(b *testing.B, before func(ctx context.Context, run string)) {
	const nodeCount = 10
	var lat, detect, open, admit, cordon []time.Duration
	for range b.N {
		runs++
		ctx, cancel := context.WithCancel(context.Background())
		run := fmt.Sprintf("bench-cordon-%d", runs)
		sel, sentinels := benchNodes(ctx, b, run, nodeCount, 500*time.Millisecond, nil, 0)
		if before != nil {
			before(ctx, run)
		}
		startBenchManager(ctx, b, run, env.Config)
		w, err := env.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			b.Fatal(err)
		}
		seen := watchCycles(ctx, b, run)
		time.Sleep(2 * time.Second) // the manager's caches synced, nothing to do
		for i, s := range sentinels {
			node := fmt.Sprintf("%s-%d", run, i)
			start := time.Now()
			if err := os.WriteFile(s, nil, 0o644); err != nil {
				b.Fatal(err)
			}
			var required time.Time
			cordoned, err := framework.WatchNode(w, node, func(n *corev1.Node) bool {
				if c := nodes.Condition(n, v1alpha1.ConditionRebootRequired); required.IsZero() && c != nil && c.Status == corev1.ConditionTrue {
					required = time.Now()
				}
				return n.Spec.Unschedulable
			}, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			created, admitted := seen(node)
			lat = append(lat, cordoned.Sub(start))
			detect, open = append(detect, required.Sub(start)), append(open, created.Sub(required))
			admit, cordon = append(admit, admitted.Sub(created)), append(cordon, cordoned.Sub(admitted))
			if _, err := framework.WatchNode(w, node, func(n *corev1.Node) bool { return !n.Spec.Unschedulable }, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		w.Stop()
		cancel()
	}
	p50 := func(d []time.Duration) float64 { return framework.Millis(framework.Percentile(d, 0.5)) }
	b.ReportMetric(p50(lat), "cordon-p50-ms")
	b.ReportMetric(framework.Millis(framework.Percentile(lat, 1)), "cordon-max-ms")
	b.ReportMetric(p50(detect), "detect-p50-ms")
	b.ReportMetric(p50(open), "open-p50-ms")
	b.ReportMetric(p50(admit), "admit-p50-ms")
	b.ReportMetric(p50(cordon), "cordon-write-p50-ms")
}

// watchCycles watches the NodeCycles of namespace ns and returns when the
// last one of a node was seen created and seen Cordoning.
func watchCycles(ctx context.Context, b *testing.B, ns string) func(node string) (created, cordoning time.Time) {
	b.Helper()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := c.Watch(ctx, &v1alpha1.NodeCycleList{}, client.InNamespace(ns))
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	createdAt, cordoningAt := map[string]time.Time{}, map[string]time.Time{}
	go sim.Follow(ctx, w, func(ev watch.Event) {
		nc, ok := ev.Object.(*v1alpha1.NodeCycle)
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if ev.Type == watch.Added {
			createdAt[nc.Spec.NodeName] = time.Now()
		}
		if _, seen := cordoningAt[nc.Spec.NodeName]; !seen && nc.Status.Phase == v1alpha1.PhaseCordoning {
			cordoningAt[nc.Spec.NodeName] = time.Now()
		}
	})
	return func(node string) (time.Time, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		return createdAt[node], cordoningAt[node]
	}
}

// BenchmarkZones: a roll of 30 nodes in 3 zones, one node at a time and
// then with --max-concurrent=3 --topology-key=topology.kubernetes.io/zone;
// reports both totals and their ratio.
func BenchmarkZones(b *testing.B) {
	const nodeCount, zones = 30, 3
	var serial, parallel time.Duration
	for range b.N {
		runs++
		_, serial = roll(b, fmt.Sprintf("bench-zones-serial-%d", runs), nodeCount, nil, nil, zones)
		_, parallel = roll(b, fmt.Sprintf("bench-zones-%d", runs), nodeCount, nil, nil, zones,
			"--max-concurrent=3", "--topology-key="+corev1.LabelTopologyZone)
	}
	b.ReportMetric(serial.Seconds(), "one-at-a-time-s")
	b.ReportMetric(parallel.Seconds(), "zones-s")
	b.ReportMetric(serial.Seconds()/parallel.Seconds(), "speedup")
}

// BenchmarkWritesPerCycle: the API writes of one in-place node cycle
// (reboot), Events included, counted on the manager's and the agents'
// clients over a 5-node roll (the agents' writes from their first start
// excluded); the kinds are logged with -v.
func BenchmarkWritesPerCycle(b *testing.B) {
	const nodeCount = 5
	var mgr, agents framework.Writes
	for range b.N {
		runs++
		roll(b, fmt.Sprintf("bench-writes-%d", runs), nodeCount, &mgr, &agents, 0)
	}
	cycles := b.N * nodeCount
	b.Logf("manager writes per cycle: %s", mgr.Per(cycles))
	b.Logf("agent writes per cycle: %s", agents.Per(cycles))
	// By kind too, so that the table of `make bench` shows where the writes go.
	for kind, n := range mgr.PerKind(cycles) {
		b.ReportMetric(n, framework.MetricUnit("manager-", kind))
	}
	for kind, n := range agents.PerKind(cycles) {
		b.ReportMetric(n, framework.MetricUnit("agent-", kind))
	}
	b.ReportMetric(float64(mgr.Total())/float64(cycles), "manager-writes/cycle")
	b.ReportMetric(float64(agents.Total())/float64(cycles), "agent-writes/cycle")
	b.ReportMetric(float64(mgr.Total()+agents.Total())/float64(cycles), "writes/cycle")
}

// roll reboots count nodes with real agents and the real manager; writes,
// when not nil, count the manager's and the agents' API writes.
func roll(b *testing.B, run string, count int, mgrWrites, agentWrites *framework.Writes, zones int, managerArgs ...string) ([]time.Duration, time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rollAgents *framework.Writes
	if agentWrites != nil {
		rollAgents = &framework.Writes{}
		defer agentWrites.Add(rollAgents)
	}
	sel, sentinels := benchNodes(ctx, b, run, count, 500*time.Millisecond, rollAgents, zones)
	if rollAgents != nil {
		// An agent's first start (its condition and checked boot) is not
		// part of a cycle; its start after each reboot is, and is counted.
		rollAgents.Reset()
	}
	list, err := env.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := env.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{LabelSelector: sel.String(), ResourceVersion: list.ResourceVersion})
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range sentinels {
		if err = os.WriteFile(s, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cfg := env.Config
	if mgrWrites != nil {
		cfg = mgrWrites.Wrap(cfg)
	}
	start := time.Now()
	startBenchManager(ctx, b, run, cfg, managerArgs...)
	r, err := framework.WatchRoll(w, count, start, 5*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	return r.Dead, r.Total
}

// startBenchManager runs the manager in-process with its defaults (and
// extra flags) for the run's namespace and nodes, through cfg, until ctx
// ends.
func startBenchManager(ctx context.Context, b *testing.B, run string, cfg *rest.Config, extra ...string) {
	b.Helper()
	opts, err := controllers.ParseOptions(append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0", "--leader-elect=false",
		"--namespace=" + run, "--node-selector=bench=" + run, "--agent-pod-selector="}, extra...), func(string) (string, bool) { return "", false }, os.Stderr)
	if err != nil {
		b.Fatal(err)
	}
	opts.Registry, opts.SkipNameValidation = prometheus.NewRegistry(), true
	mgr, err := controllers.New(ctx, cfg, opts, clock.RealClock{})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()
}
