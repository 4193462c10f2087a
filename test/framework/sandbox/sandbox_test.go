package sandbox

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// TestSandboxDemo is the smoke test of `make sandbox`: three nodes, one
// reboot, then everything is torn down.
func TestSandboxDemo(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Workers: 2, ExitAfterDemo: true, DownTime: time.Second, Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cycles) != 1 {
		t.Fatalf("want one finished NodeCycle, got %d", len(rep.Cycles))
	}
	nc := rep.Cycles[0]
	if nc.Spec.NodeName != "worker-1" || nc.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("NodeCycle %s on %s ended %s: %s", nc.Name, nc.Spec.NodeName, nc.Status.Phase, nc.Status.Message)
	}
	if nc.Status.BootIDBefore == "" || nc.Status.BootIDAfter == "" || nc.Status.BootIDBefore == nc.Status.BootIDAfter {
		t.Fatalf("boot ID did not change: %q -> %q", nc.Status.BootIDBefore, nc.Status.BootIDAfter)
	}
	if rep.RunningOn["worker-2"] == 0 {
		t.Fatalf("the evicted pods did not start on worker-2: %v", rep.RunningOn)
	}

	// The timeline printed every step of worker-1, in order. The eviction
	// Events are recorded asynchronously, so a replacement pod may be
	// printed Running before them: between the cordon and the reboot
	// request both must appear, in either order.
	rest := out.String()
	rest = after(t, rest, []string{
		`worker-1 +sentinel file created`,
		`worker-1 +condition RebootRequired=True`,
		`worker-1 +NodeCycle nodecycle-system/worker-1-\S+ created`,
		`worker-1 +cordoned`,
	})
	drain, _, _ := strings.Cut(rest, "reboot requested")
	for _, s := range []string{`worker-1 +evicted pod demo/nginx-`, `worker-2 +pod demo/nginx-\S+ Running`} {
		if !regexp.MustCompile(s).MatchString(drain) {
			t.Fatalf("timeline lacks %q between the cordon and the reboot request", s)
		}
	}
	after(t, rest, []string{
		`worker-1 +reboot requested`,
		`worker-1 +NotReady`,
		`worker-1 +new boot ID`,
		`worker-1 +Ready`,
		`worker-1 +uncordoned`,
		`worker-1 +\[6/6\] NodeCycle phase Succeeded`,
		`Summary`,
		`kubectl describe node worker-1`,
		`require-reboot worker-2`,
	})

	// Nothing is left behind.
	if _, err := os.Stat(rep.Dir); !os.IsNotExist(err) {
		t.Fatalf("sandbox directory %s still exists (%v)", rep.Dir, err)
	}
	if kids := children(t); len(kids) > 0 {
		t.Fatalf("processes left running: %v", kids)
	}
}

// after finds the steps in out in order and returns what follows the last.
func after(t *testing.T, out string, steps []string) string {
	t.Helper()
	for _, s := range steps {
		loc := regexp.MustCompile(s).FindStringIndex(out)
		if loc == nil {
			t.Fatalf("timeline lacks %q (in order)", s)
		}
		out = out[loc[1]:]
	}
	return out
}

// children lists the live child processes of this test process.
func children(t *testing.T) []string {
	t.Helper()
	me := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndex(s, ")")
		f := strings.Fields(s[i+2:])
		if len(f) > 1 && f[1] == me && f[0] != "Z" {
			out = append(out, s[:i+1])
		}
	}
	return out
}

// TestClusterAPISandbox is the smoke test of `make sandbox
// ARGS=--cluster-api`: two workload clusters, one node of each needs a
// reboot; the reboot cluster's node is rebooted and the replace cluster's
// Machine replaced, at the same time.
func TestClusterAPISandbox(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	rep, err := RunClusterAPI(ctx, Options{ExitAfterDemo: true, DownTime: time.Second, Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cycles) != 2 {
		t.Fatalf("want two finished NodeCycles, got %d", len(rep.Cycles))
	}
	for _, nc := range rep.Cycles {
		if nc.Status.Phase != v1alpha1.PhaseSucceeded {
			t.Fatalf("NodeCycle %s/%s ended %s: %s", nc.Namespace, nc.Name, nc.Status.Phase, nc.Status.Message)
		}
	}
	alpha, beta := rep.Cycles[0], rep.Cycles[1]
	if alpha.Spec.ClusterName != "alpha" || alpha.Status.Strategy != v1alpha1.StrategyReboot || alpha.Status.BootIDAfter == alpha.Status.BootIDBefore {
		t.Fatalf("alpha: %+v", alpha.Status)
	}
	if beta.Spec.ClusterName != "beta" || beta.Status.Strategy != v1alpha1.StrategyReplace || beta.Status.ReplacementMachine == "" {
		t.Fatalf("beta: %+v", beta.Status)
	}
	// Both clusters at once: each started before the other ended.
	if !alpha.Status.StartTime.Before(beta.Status.CompletionTime) || !beta.Status.StartTime.Before(alpha.Status.CompletionTime) {
		t.Fatalf("the clusters went one after the other: alpha %s-%s, beta %s-%s", alpha.Status.StartTime, alpha.Status.CompletionTime, beta.Status.StartTime, beta.Status.CompletionTime)
	}
	for _, want := range []string{`alpha +node \S+ \(Machine \S+\) needs a reboot`, `beta +Machine \S+ deleted`, `beta +Machine \S+ created \(the MachineSet's replacement\)`,
		`alpha +NodeCycle \S+ \[6/6\]: Node rebooted`, `kubectl get nodecycles -A`} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("the output lacks %q", want)
		}
	}
}

// TestSandboxEvictionRequests is `sandbox --eviction-requests`: the drain of
// worker-1 goes through EvictionRequests, and the database pod's responder
// holds it before the pod goes.
func TestSandboxEvictionRequests(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Workers: 2, ExitAfterDemo: true, DownTime: time.Second, Out: &out, EvictionRequests: true})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cycles) != 1 || rep.Cycles[0].Status.Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("want one NodeCycle Succeeded, got %+v", rep.Cycles)
	}
	after(t, out.String(), []string{
		`Kubernetes v1.38.0-beta.0 with the EvictionRequest API`,
		`Pod demo/db-0 runs on worker-1; its eviction responder demo.nodecycle.io/db-failover takes 5 s`,
		`worker-1 +cordoned`,
		`worker-1 +requested the eviction of pod demo/db-0 \(EvictionRequest, requester nodecycle.io/drain\)`,
		`worker-1 +pod demo/db-0: responder demo.nodecycle.io/db-failover active`,
		`worker-1 +reboot requested`,
		`worker-1 +\[6/6\] NodeCycle phase Succeeded`,
	})
}
