package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

// auditPolicy records only nodecycle's requests (the manager and the agents
// have users of their own), so the log stays small at 5,000 nodes.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["nodecycle-manager", "nodecycle-agent"]
- level: None
`

// BenchmarkScale runs the manager binary with its defaults against SCALE_NODES
// (default 1000) kwok nodes, SCALE_REBOOT (default 20) of which need a
// reboot, with real agents on those and on as many idle nodes. API requests
// are counted per user agent from the API server's audit log.
func BenchmarkScale(b *testing.B) {
	nodeCount, reboot := envInt("SCALE_NODES", 1000), envInt("SCALE_REBOOT", 20)
	for range b.N {
		r := runScale(b, nodeCount, reboot)
		b.ReportMetric(float64(nodeCount), "nodes")
		b.ReportMetric(r.managerRSSMiB, "manager-peak-rss-MiB")
		b.ReportMetric(r.managerCPU.Seconds(), "manager-cpu-s")
		b.ReportMetric(framework.Millis(r.firstCordon), "sentinel-to-cordon-ms")
		b.ReportMetric(framework.Millis(framework.Percentile(r.dead, 0.5)), "dead-p50-ms")
		b.ReportMetric(framework.Millis(framework.Percentile(r.dead, 1)), "dead-max-ms")
		b.ReportMetric(r.roll.Seconds(), "roll-s")
		b.ReportMetric(r.managerRequestsPerCycle, "manager-req/cycle")
		b.ReportMetric(r.idleAgentRequestsPerHour, "idle-agent-req/h")
		b.ReportMetric(r.idleAgentWrites, "idle-agent-writes")
		b.ReportMetric(r.managerNodeLists, "manager-node-lists")
	}
}

type scaleResult struct {
	managerRSSMiB            float64
	managerCPU               time.Duration
	firstCordon, roll        time.Duration
	dead                     []time.Duration
	managerRequestsPerCycle  float64
	idleAgentRequestsPerHour float64
	idleAgentWrites          float64
	managerNodeLists         float64
}

func runScale(b *testing.B, nodeCount, reboot int) scaleResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tmp := b.TempDir()
	policy := filepath.Join(tmp, "audit-policy.yaml")
	auditLog := filepath.Join(tmp, "audit.log")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		b.Fatal(err)
	}
	env, err := localkube.StartWith(map[string]string{"audit-policy-file": policy, "audit-log-path": auditLog})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	kubeconfig, err := env.AdminKubeconfig()
	if err != nil {
		b.Fatal(err)
	}
	mgrUser, err := env.Env.AddUser(envtest.User{Name: "nodecycle-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	agentUser, err := env.Env.AddUser(envtest.User{Name: "nodecycle-agent", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	mgrKubeconfigBytes, err := mgrUser.KubeConfig()
	if err != nil {
		b.Fatal(err)
	}
	mgrKubeconfig := filepath.Join(tmp, "manager.kubeconfig")
	if err = os.WriteFile(mgrKubeconfig, mgrKubeconfigBytes, 0o600); err != nil {
		b.Fatal(err)
	}
	if err = startNodeSimulation(env, kubeconfig, localkube.DefaultControllers); err != nil {
		b.Fatal(err)
	}
	names := make([]string, nodeCount)
	for i := range names {
		names[i] = fmt.Sprintf("node-%05d", i)
	}
	start := time.Now()
	if err = createNodes(ctx, env.Client, names); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d nodes Ready with boot IDs in %s", nodeCount, time.Since(start).Round(time.Millisecond))
	if err = env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}); err != nil {
		b.Fatal(err)
	}

	// Agents: the first `reboot` nodes will need a reboot, the next `reboot` stay idle.
	o := Options{DownTime: 2 * time.Second}
	o.defaults()
	targets, idle := names[:reboot], names[reboot:2*reboot]
	sentinels := map[string]string{}
	for _, set := range []struct {
		nodes []string
		ua    string
	}{{targets, "nodecycle-agent/target"}, {idle, "nodecycle-agent/idle"}} {
		cfg := rest.CopyConfig(agentUser.Config())
		cfg.UserAgent = set.ua
		cs := kubernetes.NewForConfigOrDie(cfg)
		for _, n := range set.nodes {
			s, agentErr := startAgent(ctx, env, cs, n, o)
			if agentErr != nil {
				b.Fatal(agentErr)
			}
			sentinels[n] = s
		}
	}
	idleSince := time.Now()

	// The manager, as a process with its defaults.
	bin := filepath.Join(tmp, "nodecycle-manager")
	if out, buildErr := exec.Command("go", "build", "-o", bin, filepath.Join(localkube.RepoRoot(), "cmd", "manager")).CombinedOutput(); buildErr != nil {
		b.Fatalf("building manager: %v\n%s", buildErr, out)
	}
	mgrLog, _ := os.Create(filepath.Join(tmp, "manager.log"))
	// Defaults, but for the agent check: these agents are not pods.
	mgr := exec.Command(bin, "--kubeconfig="+mgrKubeconfig, "--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--agent-pod-selector=")
	mgr.Stdout, mgr.Stderr = mgrLog, mgrLog
	if err = mgr.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = mgr.Process.Kill(); _ = mgr.Wait() }()
	time.Sleep(5 * time.Second) // caches synced, controllers started

	list, err := env.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	w, err := env.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	rollStart := time.Now()
	for _, n := range targets {
		if err = os.WriteFile(sentinels[n], nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	roll, err := framework.WatchRoll(w, reboot, rollStart, time.Duration(reboot)*time.Minute)
	if err != nil {
		b.Fatalf("%v; manager log in %s", err, tmp)
	}
	res := scaleResult{firstCordon: roll.FirstCordon, dead: roll.Dead, roll: roll.Total}
	rollEnd := time.Now()
	hwm, err := framework.ProcStatusKiB(mgr.Process.Pid, "VmHWM:")
	if err != nil {
		b.Fatal(err)
	}
	res.managerRSSMiB = float64(hwm) / 1024
	if res.managerCPU, err = framework.ProcCPU(mgr.Process.Pid); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second) // audit log flush

	counts := auditCounts(b, auditLog, rollStart, rollEnd, idleSince)
	res.managerRequestsPerCycle = float64(counts.managerRoll) / float64(reboot)
	window := time.Since(idleSince)
	res.idleAgentRequestsPerHour = float64(counts.idleAgent) / float64(len(idle)) / window.Hours()
	res.idleAgentWrites = float64(counts.idleAgentWrites)
	res.managerNodeLists = float64(counts.managerNodeLists)
	b.Logf("manager requests during the roll by verb/resource: %v", counts.managerByKind)
	b.Logf("idle agents: %d requests over %s (%d agents)", counts.idleAgent, window.Round(time.Second), len(idle))
	return res
}

type audit struct {
	managerRoll, idleAgent, idleAgentWrites, managerNodeLists int
	managerByKind                                             map[string]int
}

func auditCounts(b *testing.B, path string, rollStart, rollEnd, idleSince time.Time) audit {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	a := audit{managerByKind: map[string]int{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct {
			UserAgent string `json:"userAgent"`
			Verb      string `json:"verb"`
			ObjectRef struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
			Stage                    string           `json:"stage"`
			RequestReceivedTimestamp metav1.MicroTime `json:"requestReceivedTimestamp"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		// One event per request: a watch when it starts, others when done.
		if (ev.Verb == "watch") != (ev.Stage == "ResponseStarted") {
			continue
		}
		t := ev.RequestReceivedTimestamp.Time
		switch {
		case strings.HasPrefix(ev.UserAgent, "nodecycle-manager"):
			if ev.ObjectRef.Resource == "nodes" && (ev.Verb == "list" || ev.Verb == "watch") {
				a.managerNodeLists++
			}
			if !t.Before(rollStart) && !t.After(rollEnd) {
				a.managerRoll++
				a.managerByKind[ev.Verb+" "+ev.ObjectRef.Resource+"/"+ev.ObjectRef.Subresource]++
			}
		case strings.HasPrefix(ev.UserAgent, "nodecycle-agent/idle"):
			if t.After(idleSince) {
				a.idleAgent++
				if ev.Verb != "get" && ev.Verb != "list" && ev.Verb != "watch" {
					a.idleAgentWrites++
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatalf("reading the audit log: %v", err)
	}
	return a
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
