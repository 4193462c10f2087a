//go:build e2e

package capi

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/kind"
)

const (
	md          = "work-md-0"
	updatedFile = "/etc/sysctl.d/90-nodecycle-e2e.conf"
	updatedText = "vm.max_map_count = 262145\n"
)

// workerMachines are the MachineDeployment's Machines by their node's name.
func workerMachines(ctx context.Context) (map[string]clusterv1.Machine, error) {
	var list clusterv1.MachineList
	if err := mgmt.Client.List(ctx, &list, client.InNamespace(work.Namespace),
		client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: md}); err != nil {
		return nil, err
	}
	out := map[string]clusterv1.Machine{}
	for _, m := range list.Items {
		if m.Status.NodeRef.Name != "" {
			out[m.Status.NodeRef.Name] = m
		}
	}
	return out, nil
}

func bootIDOf(ctx context.Context, node string) (string, error) {
	n, err := work.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return n.Status.NodeInfo.BootID, nil
}

// testInPlaceUpdate changes a sysctl file of the workers' bootstrap
// template: Cluster API asks nodecycle, which reboots each worker once in
// place with the file written and verified on the new boot.
func testInPlaceUpdate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	machines, err := workerMachines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	boots := map[string]string{}
	for node := range machines {
		if boots[node], err = bootIDOf(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	mw, err := watchMachines(ctx, work.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Stop()
	nw, err := work.WatchNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()

	files := fmt.Sprintf("[{path: %s, content: %q, permissions: \"0644\"}]", updatedFile, updatedText)
	template := filepath.Join(t.TempDir(), "template.yaml")
	if err = writeFile(template, BootstrapTemplate(md+"-v2", work.Namespace, files)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err = mgmt.Kubectl(ctx, "apply", "-f", template); err != nil {
		t.Fatal(err)
	}
	if _, err = mgmt.Kubectl(ctx, "-n", work.Namespace, "patch", "machinedeployment", md, "--type=merge",
		"-p", `{"spec":{"template":{"spec":{"bootstrap":{"configRef":{"name":"`+md+`-v2"}}}}}}`); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, 12*time.Minute, false, func(ctx context.Context) (bool, error) {
		now, werr := workerMachines(ctx)
		if werr != nil || len(now) != len(machines) {
			return false, nil
		}
		for node, m := range now {
			_, inProgress := m.Annotations[clusterv1.UpdateInProgressAnnotation]
			boot, _ := bootIDOf(ctx, node)
			if inProgress || !upToDate(&m) || boot == boots[node] {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the MachineDeployment did not roll in place: %v\nMachines: %s", err, mw.summary())
	}
	tl := newTimeline("in-place update of the workers' bootstrap", start)
	tl.add("KubeadmConfigTemplate "+md+"-v2 applied, MachineDeployment patched", start)
	tl.add("every Machine up to date (poll)", time.Now())
	for node := range machines {
		nodeSteps(tl, nw, node, kind.MarkCordoned, kind.MarkRequested, kind.MarkNewBootID, kind.MarkReady, kind.MarkUncordoned)
	}
	if created, deleting := mw.count(); created > 0 || deleting > 0 {
		t.Errorf("an in-place update created %d and deleted %d Machines: %s", created, deleting, mw.summary())
	}
	for node, m := range machines {
		if ids := nw.BootIDs(node); len(ids) != 2 {
			t.Errorf("%s: boot IDs %v, want exactly one reboot", node, ids)
		}
		got, err := work.Exec(ctx, node, "cat", updatedFile)
		if err != nil || got+"\n" != updatedText {
			t.Errorf("%s: %s holds %q (%v), want %q", node, updatedFile, got, err, updatedText)
		}
		nc, err := updateCycle(ctx, m.Name)
		if err != nil {
			t.Error(err)
		} else if nc.Status.Phase != v1alpha1.PhaseSucceeded || nc.Status.BootIDBefore != boots[node] {
			t.Errorf("NodeCycle %s: %s, boot %s -> %s (before the change %s)", nc.Name, nc.Status.Phase, nc.Status.BootIDBefore, nc.Status.BootIDAfter, boots[node])
		}
	}
	if o := nw.Overlaps(); len(o) > 0 {
		t.Errorf("two nodes cordoned at once: %v", o)
	}
	t.Logf("%d workers updated in place in %s", len(machines), time.Since(start).Round(time.Second))
}

// updateCycle is the NodeCycle of machine's in-place update.
func updateCycle(ctx context.Context, machine string) (*v1alpha1.NodeCycle, error) {
	var list v1alpha1.NodeCycleList
	if err := mgmt.Client.List(ctx, &list, client.InNamespace(work.Namespace)); err != nil {
		return nil, err
	}
	for i := range list.Items {
		if strings.HasPrefix(list.Items[i].Name, machine+"-update-") {
			return &list.Items[i], nil
		}
	}
	return nil, fmt.Errorf("no NodeCycle of an in-place update of %s", machine)
}

// testReplace: with the replace strategy, a worker that needs a reboot is
// cordoned, drained and its Machine deleted; CAPD and kubeadm make a new
// one, whose node joins Ready; never two Machines deleting at once.
func testReplace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if _, err := mgmt.Kubectl(ctx, "-n", work.Namespace, "annotate", "--overwrite", "machinedeployment", md, v1alpha1.AnnotationStrategy+"=replace"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := mgmt.Kubectl(context.Background(), "-n", work.Namespace, "annotate", "--overwrite", "machinedeployment", md, v1alpha1.AnnotationStrategy+"=reboot"); err != nil {
			t.Error(err)
		}
	}()
	machines, err := workerMachines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := work.Workers[0]
	old, ok := machines[node]
	if !ok {
		t.Fatalf("no Machine of node %s", node)
	}
	mw, err := watchMachines(ctx, work.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Stop()
	nw, err := work.WatchNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()
	start := time.Now()
	if err = work.RequireReboot(ctx, node); err != nil {
		t.Fatal(err)
	}
	nc, err := waitCycle(ctx, node, start, 12*time.Minute)
	if err != nil {
		t.Fatalf("%v\nMachines: %s", err, mw.summary())
	}
	if nc.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("NodeCycle %s ended %s: %s", nc.Name, nc.Status.Phase, nc.Status.Message)
	}
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		ready, rerr := work.readyNodes(ctx)
		now, _ := workerMachines(ctx)
		_, oldThere := now[node]
		return rerr == nil && ready == len(machines)+1 && len(now) == len(machines) && !oldThere, nil
	})
	if err != nil {
		t.Fatalf("no new worker Ready: %v\nMachines: %s", err, mw.summary())
	}
	mw.mu.Lock()
	deletedAt, created, most := mw.deleting[old.Name], len(mw.created), mw.mostDeleting
	mw.mu.Unlock()
	if deletedAt.IsZero() || created != 1 || most != 1 {
		t.Errorf("want %s deleted and one Machine created, never two deleting: %s", old.Name, mw.summary())
	}
	if cordoned := nw.First(node, kind.MarkCordoned); cordoned.IsZero() || cordoned.After(deletedAt) {
		t.Errorf("%s: cordoned at %v, its Machine deleting at %v", node, cordoned, deletedAt)
	}
	tl := newTimeline("replace of "+node, start)
	tl.add("sentinel written (docker exec touch)", start)
	nodeSteps(tl, nw, node, kind.MarkRebootRequired, kind.MarkCordoned)
	tl.add("NodeCycle "+string(nc.Status.Phase), nc.Status.CompletionTime.Time)
	mw.mu.Lock()
	tl.add("Machine "+old.Name+" deleting", deletedAt)
	tl.add("Machine "+old.Name+" gone", mw.gone[old.Name])
	newMachines := map[string]time.Time{}
	for name, at := range mw.created {
		newMachines[name] = at
	}
	mw.mu.Unlock()
	now, err := workerMachines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for newNode, m := range now {
		at, isNew := newMachines[m.Name]
		if !isNew {
			continue
		}
		tl.add("Machine "+m.Name+" created", at)
		for _, c := range []string{clusterv1.MachineBootstrapConfigReadyCondition, clusterv1.MachineInfrastructureReadyCondition, clusterv1.MachineNodeReadyCondition} {
			if cond := conditionOf(&m, c); cond != nil && cond.Status == metav1.ConditionTrue {
				tl.add("Machine "+m.Name+": "+c, cond.LastTransitionTime.Time)
			}
		}
		nodeSteps(tl, nw, newNode, kind.MarkJoined, kind.MarkReady)
	}
	if err := work.WaitAvailable(ctx); err != nil {
		t.Errorf("sample-deployment not whole again: %v", err)
	}
	if err := work.restartable(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s replaced in %s; workers now %v", node, time.Since(start).Round(time.Second), work.Workers)
}

// testDeadNode: a worker whose container never comes back after its reboot
// request: the NodeCycle (reboot only) fails, no other node is touched,
// and MachineHealthCheck does not remediate the Machine while nodecycle
// works on it.
func testDeadNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	node := work.Workers[len(work.Workers)-1]
	machines, err := workerMachines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	machine := machines[node].Name
	mw, err := watchMachines(ctx, work.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Stop()
	nw, err := work.WatchNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()
	// The container may not start again: the reboot ends it for good.
	var out []byte
	if out, err = exec.CommandContext(ctx, "docker", "update", "--restart=no", node).CombinedOutput(); err != nil {
		t.Fatalf("docker update: %v\n%s", err, out)
	}
	start := time.Now()
	if err = work.RequireReboot(ctx, node); err != nil {
		t.Fatal(err)
	}
	nc, err := waitCycle(ctx, node, start, 8*time.Minute)
	if err != nil {
		t.Fatalf("%v\nMachines: %s", err, mw.summary())
	}
	if nc.Status.Phase != v1alpha1.PhaseFailed {
		t.Errorf("NodeCycle %s of a node that never came back ended %s: %s", nc.Name, nc.Status.Phase, nc.Status.Message)
	}
	ended := nc.Status.CompletionTime
	mw.mu.Lock()
	deletedAt := mw.deleting[machine]
	mw.mu.Unlock()
	if !deletedAt.IsZero() && (ended == nil || deletedAt.Before(ended.Time)) {
		t.Errorf("Machine %s deleted at %v while its NodeCycle ran (ended %v): remediation and nodecycle both acted", machine, deletedAt, ended)
	}
	for _, other := range append([]string{work.ControlPlane}, work.Workers...) {
		if other == node {
			continue
		}
		if c := nw.Marks(other, kind.MarkCordoned); len(c) > 0 {
			t.Errorf("%s: cordoned at %v while %s was down", other, c, node)
		}
	}
	t.Logf("%s: NodeCycle %s %s after %s: %s; Machines: %s", node, nc.Name, nc.Status.Phase,
		time.Since(start).Round(time.Second), nc.Status.Message, mw.summary())
}
