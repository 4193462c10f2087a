//go:build e2e

package kind

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework"
)

// BenchmarkKindReboot is the seed scenario on real kubelets, once per
// iteration on worker 1: sentinel -> uncordoned, split into the drain
// (cordon -> reboot requested), the node's own shutdown, boot and Ready
// (reboot acknowledged by the agent -> new boot ID reported with Ready) and
// nodecycle's overhead (the rest: detection, admission, the reboot request,
// verification, uncordon). It also reports the manager's and agents' memory
// and CPU, idle and during the reboot, read from /proc on the host (the
// nodes' processes are the host's).
func BenchmarkKindReboot(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	target := cluster.Workers[0]
	const idle = 10 * time.Second
	// Metrics are the means over the iterations.
	sums := map[string]float64{}
	var units []string
	report := func(v float64, unit string) {
		if _, seen := sums[unit]; !seen {
			units = append(units, unit)
		}
		sums[unit] += v
	}
	defer func() {
		for _, u := range units {
			b.ReportMetric(sums[u]/float64(b.N), u)
		}
	}()
	for range b.N {
		// The sample's pods spread over both workers again, as in the seed
		// (the previous drain left them all on the other worker).
		if _, err := cluster.Kubectl(ctx, "-n", SampleNamespace, "rollout", "restart", "deployment/"+SampleName); err != nil {
			b.Fatal(err)
		}
		if _, err := cluster.Kubectl(ctx, "-n", SampleNamespace, "rollout", "status", "deployment/"+SampleName, "--timeout=3m"); err != nil {
			b.Fatal(err)
		}
		if pods, err := cluster.PodsOn(ctx, SampleNamespace, target); err != nil || len(pods) == 0 {
			b.Fatalf("no sample pod on %s to drain (%v)", target, err)
		}
		mgr, err := leader(ctx)
		if err != nil {
			b.Fatal(err)
		}
		agent, err := agentOf(ctx, target)
		if err != nil {
			b.Fatal(err)
		}
		cpu := func(pid int) time.Duration {
			d, cpuErr := framework.ProcCPU(pid)
			if cpuErr != nil {
				b.Fatal(cpuErr)
			}
			return d
		}
		rss := func(pid int, key string) float64 {
			kib, rssErr := framework.ProcStatusKiB(pid, key)
			if rssErr != nil {
				b.Fatal(rssErr)
			}
			return float64(kib) / 1024
		}

		// Idle: nothing to do for a while.
		mgrCPU0, agentCPU0 := cpu(mgr), cpu(agent.PID)
		time.Sleep(idle)
		mgrIdle, agentIdle := cpu(mgr)-mgrCPU0, cpu(agent.PID)-agentCPU0
		mgrRSSIdle, agentRSSIdle := rss(mgr, "VmRSS"), rss(agent.PID, "VmRSS")

		nw, err := cluster.WatchNodes(ctx)
		if err != nil {
			b.Fatal(err)
		}
		mgrCPU1, agentCPU1 := cpu(mgr), cpu(agent.PID)
		agentCPUBeforeReboot := agentCPU1
		start := time.Now()
		if err = cluster.RequireReboot(ctx, target); err != nil {
			b.Fatal(err)
		}
		// The agent's CPU up to its reboot command, read before the node goes.
		for nw.First(target, MarkAcknowledged).IsZero() && time.Since(start) < 5*time.Minute {
			if d, cpuErr := framework.ProcCPU(agent.PID); cpuErr == nil {
				agentCPUBeforeReboot = d
			}
			time.Sleep(50 * time.Millisecond)
		}
		nc, err := cluster.WaitCycle(ctx, target, start, 10*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		mgrReboot := cpu(mgr) - mgrCPU1
		mgrPeak := rss(mgr, "VmHWM")
		nw.Stop()
		if nc.Status.Phase != "Succeeded" {
			b.Fatalf("NodeCycle %s: %s %s", nc.Name, nc.Status.Phase, nc.Status.Message)
		}
		at := func(what string) time.Time {
			t := nw.First(target, what)
			if t.IsZero() {
				b.Fatalf("%s: the watch never saw %s", target, what)
			}
			return t
		}
		total := at(MarkUncordoned).Sub(start)
		detect := at(MarkRebootRequired).Sub(start)
		admit := at(MarkCordoned).Sub(at(MarkRebootRequired))
		drain := at(MarkRequested).Sub(at(MarkCordoned))
		node := at(MarkNewBootID).Sub(at(MarkAcknowledged))
		overhead := total - drain - node
		report(total.Seconds(), "s-total")
		report(drain.Seconds(), "s-drain")
		report(node.Seconds(), "s-node-reboot")
		report(framework.Millis(overhead), "ms-overhead")
		report(framework.Millis(detect), "ms-detect")
		report(framework.Millis(admit), "ms-admit")
		report(mgrRSSIdle, "MiB-manager-rss-idle")
		report(mgrPeak, "MiB-manager-rss-peak")
		report(agentRSSIdle, "MiB-agent-rss-idle")
		report(framework.Millis(mgrIdle)*float64(time.Minute/idle), "ms-manager-cpu/min-idle")
		report(framework.Millis(agentIdle)*float64(time.Minute/idle), "ms-agent-cpu/min-idle")
		report(framework.Millis(mgrReboot), "ms-manager-cpu-reboot")
		report(framework.Millis(agentCPUBeforeReboot-agentCPU1), "ms-agent-cpu-reboot")
		b.Logf("%s: total %.1fs = drain %.1fs + node's own reboot %.1fs + nodecycle %.0fms (detection %.0fms, admission %.0fms)\n",
			target, total.Seconds(), drain.Seconds(), node.Seconds(), framework.Millis(overhead), framework.Millis(detect), framework.Millis(admit))
	}
}

// leader is the PID of the manager that holds the leader lease (the chart
// runs two).
func leader(ctx context.Context) (int, error) {
	var holder string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		lease, err := cluster.Clientset.CoordinationV1().Leases(Namespace).Get(ctx, "nodecycle-manager.nodecycle.io", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			return false, nil
		}
		holder = *lease.Spec.HolderIdentity
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading the leader lease: %w", err)
	}
	managers, err := Processes("nodecycle-manager")
	if err != nil {
		return 0, err
	}
	for _, m := range managers {
		if m.Hostname != "" && strings.HasPrefix(holder, m.Hostname) {
			return m.PID, nil
		}
	}
	return 0, fmt.Errorf("no manager process of the lease holder %q among %v", holder, managers)
}

// agentOf waits until the agent of node runs and has published that the
// node needs no reboot (after a reboot, the agent starts again with the
// node), and returns its process.
func agentOf(ctx context.Context, node string) (Process, error) {
	var agent Process
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := cluster.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if c := nodes.Condition(n, v1alpha1.ConditionRebootRequired); c == nil || c.Status != corev1.ConditionFalse {
			return false, nil
		}
		agents, err := Processes("nodecycle-agent")
		if err != nil {
			return false, err
		}
		for _, a := range agents {
			if a.Node == node {
				agent = a
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return Process{}, fmt.Errorf("waiting for the agent of %s: %w", node, err)
	}
	return agent, nil
}
