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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nodecycle/nodecycle/internal/agent"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// startAgent runs a real agent in-process on node with a sentinel in dir.
func startAgent(b *testing.B, node, dir string, reboot string) context.CancelFunc {
	return startAgentWith(b, node, "", dir, reboot, nil)
}

// startAgentWith is startAgent with its writes counted (when not nil),
// checking requests with the key of namespace (the manager's).
func startAgentWith(b *testing.B, node, namespace, dir string, reboot string, writes *framework.Writes) context.CancelFunc {
	b.Helper()
	cs := env.Clientset
	if writes != nil {
		cs = kubernetes.NewForConfigOrDie(writes.Wrap(env.Config))
	}
	ctx, cancel := context.WithCancel(context.Background())
	sentinel := filepath.Join(dir, "reboot-required")
	a := &agent.Agent{
		NodeName: node, Client: cs,
		Checker:      agent.FileChecker{Path: sentinel},
		Rebooter:     agent.CommandRebooter{Argv: agent.HostCommand(reboot, false), Timeout: 10 * time.Second},
		SentinelFile: sentinel, RecheckPeriod: time.Minute, Namespace: namespace,
	}
	ready := a.Ready()
	go func() { _ = a.Run(ctx) }()
	<-ready
	return cancel
}

// benchNodes makes the run's namespace and count Nodes labelled
// bench=<run>, each with a real agent (whose reboot removes its sentinel),
// played by the simulated kubelet (down for downTime) until ctx ends; the
// agents stop when the benchmark does. agentWrites, when not nil, counts
// the agents' writes. With zones, node i is in topology zone i%zones. It
// returns the Nodes' selector and sentinels.
func benchNodes(ctx context.Context, b *testing.B, run string, count int, downTime time.Duration, agentWrites *framework.Writes, zones int) (labels.Selector, []string) {
	b.Helper()
	sel := labels.SelectorFromSet(labels.Set{"bench": run})
	if _, err := env.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: run}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	kubelet := &sim.Kubelet{Client: env.Clientset, Selector: sel, DownTime: downTime}
	go kubelet.Run(ctx)
	var sentinels []string
	for i := range count {
		n := fmt.Sprintf("%s-%d", run, i)
		lbls := map[string]string{"bench": run}
		if zones > 0 {
			lbls[corev1.LabelTopologyZone] = fmt.Sprintf("zone-%d", i%zones)
		}
		if err := sim.CreateNode(ctx, env.Clientset, n, lbls); err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		s := filepath.Join(dir, "reboot-required")
		b.Cleanup(startAgentWith(b, n, run, dir, "rm -f "+s, agentWrites))
		sentinels = append(sentinels, s)
	}
	return sel, sentinels
}

// BenchmarkAgentIdle runs the agent binary against the API server for 60 s
// with nothing to do and reports its RSS, CPU time and API writes.
func BenchmarkAgentIdle(b *testing.B) {
	ctx := context.Background()
	bin := filepath.Join(b.TempDir(), "nodecycle-agent")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(localkube.RepoRoot(), "cmd", "agent")).CombinedOutput(); err != nil {
		b.Fatalf("building agent: %v\n%s", err, out)
	}
	user, err := env.Env.AddUser(envtest.User{Name: "bench-agent", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	kc, _ := user.KubeConfig()
	kubeconfig := filepath.Join(b.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		b.Fatal(err)
	}
	const node = "bench-idle"
	if err := sim.CreateNode(ctx, env.Clientset, node, nil); err != nil {
		b.Fatal(err)
	}
	idle := 60 * time.Second
	if s := os.Getenv("BENCH_IDLE"); s != "" {
		idle, _ = time.ParseDuration(s)
	}
	for range b.N {
		cmd := exec.Command(bin, "--kubeconfig="+kubeconfig, "--node-name="+node,
			"--sentinel-file="+filepath.Join(b.TempDir(), "reboot-required"),
			"--metrics-bind-address=0", "--health-probe-bind-address=0")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		// Settle: the start-up writes, then idle. Every write to the Node
		// while idle is counted from a watch (each is one event).
		time.Sleep(3 * time.Second)
		w, err := env.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", node).String()})
		if err != nil {
			b.Fatal(err)
		}
		cpu0, err0 := framework.ProcCPU(cmd.Process.Pid)
		writes, closed := 0.0, false
		for end := time.After(idle); !closed; {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					b.Fatal("the watch of the idle agent's Node closed")
				}
				if ev.Type == watch.Modified {
					writes++
				}
			case <-end:
				closed = true
			}
		}
		w.Stop()
		cpu1, err1 := framework.ProcCPU(cmd.Process.Pid)
		rss, err2 := framework.ProcStatusKiB(cmd.Process.Pid, "VmRSS:")
		if err := errors.Join(err0, err1, err2); err != nil {
			b.Fatal(err)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b.ReportMetric(float64(rss)/1024, "rss-MiB")
		b.ReportMetric(framework.Millis(cpu1-cpu0)/idle.Minutes(), "cpu-ms/min")
		b.ReportMetric(writes, "node-writes")
		b.ReportMetric(idle.Seconds(), "idle-s")
	}
}
