//go:build e2e

package capi

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/kind"
)

var (
	mgmt *Management
	work *Workload
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	var err error
	mgmt, err = Up(ctx, "nodecycle-capi", os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv("KIND_KEEP") == "" {
		defer mgmt.Delete()
	} else {
		defer fmt.Printf("management cluster %s kept: kubectl --kubeconfig %s\n", mgmt.Name, mgmt.Kubeconfig)
	}
	// What docs/clusterapi.md tells a user to do after clusterctl init: let
	// the manager work on the Clusters of a namespace.
	if _, err = mgmt.Kubectl(ctx, "create", "rolebinding", "nodecycle-manager", "-n", "default",
		"--clusterrole", "nodecycle-manager-namespace", "--serviceaccount", "nodecycle-system:nodecycle-manager"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("==> %s creating the workload cluster work (1 control plane, 2 workers)\n", time.Now().Format("15:04:05"))
	work, err = mgmt.CreateWorkload(ctx, WorkloadSpec{Name: "work", Workers: 2, Strategy: "reboot"}, 12*time.Minute)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := work.DeploySample(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	printTimelines()
	return code
}

// TestClusterAPI runs the scenarios in order on the one workload cluster.
func TestClusterAPI(t *testing.T) {
	for _, s := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"reboot: a worker needs a reboot", testReboot},
		{"in-place update: a sysctl file of the workers' bootstrap", testInPlaceUpdate},
		{"replace: a worker of a replace MachineDeployment", testReplace},
		{"dead node: a worker that never comes back", testDeadNode},
	} {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}

func testReboot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	node := work.Workers[0]
	before, err := work.Container(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	n, err := work.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bootID := n.Status.NodeInfo.BootID
	nw, err := work.WatchNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()
	start := time.Now()
	if err = work.RequireReboot(ctx, node); err != nil {
		t.Fatal(err)
	}
	nc, err := waitCycle(ctx, node, start, 8*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if nc.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("NodeCycle %s ended %s: %s", nc.Name, nc.Status.Phase, nc.Status.Message)
	}
	after, err := work.Container(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	if after.Restarts <= before.Restarts {
		t.Errorf("%s: container not restarted (restarts %d -> %d)", node, before.Restarts, after.Restarts)
	}
	if nc.Status.BootIDBefore != bootID || nc.Status.BootIDAfter == bootID || nc.Status.BootIDAfter == "" {
		t.Errorf("%s: NodeCycle recorded boot ID %s -> %s, node had %s", node, nc.Status.BootIDBefore, nc.Status.BootIDAfter, bootID)
	}
	for _, what := range []string{kind.MarkCordoned, kind.MarkNewBootID, kind.MarkUncordoned} {
		if len(nw.Marks(node, what)) == 0 {
			t.Errorf("%s: the watch never saw %s", node, what)
		}
	}
	for _, other := range append([]string{work.ControlPlane}, work.Workers[1:]...) {
		if c := nw.Marks(other, kind.MarkCordoned); len(c) > 0 {
			t.Errorf("%s: cordoned at %v, though only %s needed a reboot", other, c, node)
		}
	}
	if err = work.WaitAvailable(ctx); err != nil {
		t.Errorf("sample-deployment not whole again: %v", err)
	}
	tl := newTimeline("reboot of "+node, start)
	tl.add("sentinel written (docker exec touch)", start)
	nodeSteps(tl, nw, node, kind.MarkRebootRequired, kind.MarkCordoned, kind.MarkRequested, kind.MarkAcknowledged,
		kind.MarkNotReady, kind.MarkNewBootID, kind.MarkReady, kind.MarkUncordoned)
	tl.add("NodeCycle "+string(nc.Status.Phase), nc.Status.CompletionTime.Time)
	back := laterOf(nw.First(node, kind.MarkNewBootID), nw.First(node, kind.MarkReady))
	tl.note("nodecycle's own time: RebootRequired -> cordoned %s, new boot and Ready -> uncordoned %s",
		gap(nw.First(node, kind.MarkRebootRequired), nw.First(node, kind.MarkCordoned)), gap(back, nw.First(node, kind.MarkUncordoned)))
	t.Logf("%s rebooted in %s (NodeCycle %s)", node, time.Since(start).Round(time.Second), nc.Name)
	// What a user reads: the Machine's and the Node's Events.
	machines, err := workerMachines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	machine, err := mgmt.Kubectl(ctx, "-n", work.Namespace, "describe", "machine", machines[node].Name)
	if err != nil {
		t.Fatal(err)
	}
	described, err := work.Kubectl(ctx, "describe", "node", node)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl describe machine %s (management cluster):\n%s", machines[node].Name, events(machine))
	t.Logf("kubectl describe node %s (workload cluster):\n%s", node, events(described))
	for _, want := range []string{"RebootRequested"} {
		if !strings.Contains(described, want) && !strings.Contains(machine, want) {
			t.Errorf("neither describe output mentions %s", want)
		}
	}
}

// nodeSteps adds the first time the Node watch saw each mark of node.
func nodeSteps(tl *timeline, nw *kind.NodeWatch, node string, marks ...string) {
	for _, m := range marks {
		tl.add(node+": "+m, nw.First(node, m))
	}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// gap is b - a, or "?" when either was never seen.
func gap(a, b time.Time) string {
	if a.IsZero() || b.IsZero() {
		return "?"
	}
	return b.Sub(a).Round(time.Millisecond).String()
}

// events is the Events section of kubectl describe's output.
func events(described string) string {
	if i := strings.LastIndex(described, "\nEvents:"); i >= 0 {
		return described[i+1:]
	}
	return described
}

// waitCycle waits until the NodeCycle of node in the management cluster,
// created at or after since, has finished.
func waitCycle(ctx context.Context, node string, since time.Time, timeout time.Duration) (*v1alpha1.NodeCycle, error) {
	var found *v1alpha1.NodeCycle
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		var list v1alpha1.NodeCycleList
		if err := mgmt.Client.List(ctx, &list, client.InNamespace(work.Namespace)); err != nil {
			return false, nil
		}
		for i := range list.Items {
			nc := &list.Items[i]
			if nc.Spec.NodeName == node && !nc.CreationTimestamp.Time.Before(since.Truncate(time.Second)) && nc.Status.Phase.Terminal() {
				found = nc
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the NodeCycle of %s: %w", node, err)
	}
	return found, nil
}
