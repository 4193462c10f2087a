package inplace

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

const sysctlFile = "/etc/sysctl.d/90-nodecycle-test.conf"

// bootstrapSpec is a bootstrap configuration (KubeadmConfig's shape) with
// one file at path.
func bootstrapSpec(path, content string) map[string]any {
	return map[string]any{"files": []any{map[string]any{"path": path, "content": content, "permissions": "0644"}}}
}

// rollout starts a pool of n Machines (reboot opted in; a rolling update
// of one Machine at a time, no surge) whose nodes have the file at path
// with content, as their bootstrap wrote it, then points the
// MachineDeployment at a new bootstrap template with next. It returns the
// Machines from before the change, and when it was made.
func rollout(t *testing.T, p *pool, ns, md string, n int, path, content, next string) ([]clusterv1.Machine, time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := optIn(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := capi.CreateCluster(ctx, ns, "c", env.Config); err != nil {
		t.Fatal(err)
	}
	if _, err := capi.CreateMachineDeploymentWith(ctx, ns, "c", md, int32(n), map[string]string{v1alpha1.AnnotationStrategy: "reboot"},
		sim.PoolOptions{MaxUnavailable: 1, BootstrapSpec: bootstrapSpec(path, content)}); err != nil {
		t.Fatal(err)
	}
	machines := readyMachines(t, ns, md, n)
	available(t, ns, md, n)
	for _, m := range machines {
		root := filepath.Join(t.TempDir(), m.Status.NodeRef.Name)
		write(t, root, path, content)
		p.startAgent(m.Status.NodeRef.Name, root)
	}
	if err := capi.CreateBootstrapTemplate(ctx, ns, md+"-v2", bootstrapSpec(path, next)); err != nil {
		t.Fatal(err)
	}
	d := &clusterv1.MachineDeployment{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: md}, d); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"bootstrap":{"configRef":{"name":%q}}}}}}`, md+"-v2")
	if err := k8s.Patch(ctx, d, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	return machines, changed
}

// TestMachineDeploymentRollsInPlace: a change of a sysctl file in the
// bootstrap template rolls through every Machine in place, one at a time:
// no Machine is created or deleted, each node reboots once with the new
// file verified by its agent on the new boot, and Cluster API sees each
// update done.
func TestMachineDeploymentRollsInPlace(t *testing.T) {
	p := startPool(t)
	ctx := context.Background()
	const ns = "in-place"
	before, changed := rollout(t, p, ns, "pool", 3, sysctlFile, "net.core.somaxconn = 1024\n", "net.core.somaxconn = 4096\n")
	uids := map[types.UID]string{}
	bootBefore := map[string]string{}
	for _, m := range before {
		uids[m.UID] = m.Name
		bootBefore[m.Name] = bootID(t, m.Status.NodeRef.Name)
	}

	// Every Machine is the same one, up to date, and no update is left in
	// progress; meanwhile no other Machine ever appears.
	done := map[string]time.Time{}
	started := map[string]time.Time{}
	waitFor(t, 3*time.Minute, "the MachineDeployment rolled in place", func() (bool, string) {
		var list clusterv1.MachineList
		if err := k8s.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: "pool"}); err != nil {
			return false, err.Error()
		}
		var waiting []string
		for _, m := range list.Items {
			if _, ok := uids[m.UID]; !ok {
				t.Fatalf("Machine %s was created during the rollout: a replacement\n%s", m.Name, capiLog("in-place", "InPlace", "CanUpdate", "Scal"))
			}
			_, inProgress := m.Annotations[clusterv1.UpdateInProgressAnnotation]
			if inProgress && started[m.Name].IsZero() {
				started[m.Name] = time.Now()
			}
			if !inProgress && !started[m.Name].IsZero() && done[m.Name].IsZero() {
				done[m.Name] = time.Now()
			}
			if done[m.Name].IsZero() || !upToDate(&m) {
				waiting = append(waiting, fmt.Sprintf("%s (in progress %t, %s)", m.Name, inProgress, condition(&m, clusterv1.MachineUpToDateCondition)))
			}
		}
		if len(list.Items) != 3 {
			t.Fatalf("the MachineDeployment has %d Machines, want the same 3\n%s", len(list.Items), capiLog("in-place", "InPlace", "CanUpdate", "Scal"))
		}
		return len(waiting) == 0, strings.Join(waiting, "; ")
	})

	// Each node rebooted once, with the new file, proven on its new boot.
	type row struct {
		machine                   string
		start, end                time.Time
		slot, requested, finished time.Time
		bootFrom, bootTo          string
	}
	var rows []row
	for _, m := range before {
		node := m.Status.NodeRef.Name
		if got := p.kubelet.Reboots(node); got != 1 {
			t.Errorf("node %s rebooted %d times, want once", node, got)
		}
		if got := read(t, p.roots[node], sysctlFile); got != "net.core.somaxconn = 4096\n" {
			t.Errorf("node %s: %s holds %q, want the new content", node, sysctlFile, got)
		}
		nc := updateCycle(t, ns, m.Name)
		if nc.Status.Phase != v1alpha1.PhaseSucceeded || nc.Status.BootIDAfter == "" || nc.Status.BootIDBefore != bootBefore[m.Name] {
			t.Errorf("NodeCycle %s: phase %s, boot %q -> %q (boot before the change %q)", nc.Name, nc.Status.Phase, nc.Status.BootIDBefore, nc.Status.BootIDAfter, bootBefore[m.Name])
		}
		// I6: the NodeCycle keeps digests only, and the content Secret
		// went with the update.
		if raw, _ := json.Marshal(nc.Spec); strings.Contains(string(raw), "somaxconn") || nc.Spec.Update.ContentSecret == "" {
			t.Errorf("NodeCycle %s keeps the update's content, or names no content Secret: %s", nc.Name, raw)
		}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: cluster.WorkloadAgentNamespace, Name: nc.Spec.Update.ContentSecret}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("NodeCycle %s: its content Secret is still there: %v", nc.Name, err)
		}
		n := node0(t, node)
		if st, ok := nodeupdate.StatusOf(n); !ok || st.Result != nodeupdate.Verified || st.BootID != nodes.BootID(n) || st.ID != nc.Spec.Update.ID {
			t.Errorf("node %s: update status %+v, want Verified on its boot %s", node, st, nodes.BootID(n))
		}
		if _, ok := n.Annotations[v1alpha1.AnnotationUpdate]; ok || n.Spec.Unschedulable {
			t.Errorf("node %s still carries the update or the cordon", node)
		}
		if eventTime(t, node, v1alpha1.ReasonUpdateVerified).IsZero() {
			t.Errorf("node %s has no %s Event", node, v1alpha1.ReasonUpdateVerified)
		}
		rows = append(rows, row{m.Name, started[m.Name], done[m.Name], nc.Status.StartTime.Time, nc.Status.RebootRequestTime.Time,
			nc.Status.CompletionTime.Time, nc.Status.BootIDBefore, nc.Status.BootIDAfter})
	}
	// One at a time: no two updates overlap.
	sort.Slice(rows, func(i, j int) bool { return rows[i].start.Before(rows[j].start) })
	for i := 1; i < len(rows); i++ {
		if rows[i].slot.Before(rows[i-1].finished) {
			t.Errorf("the update of %s began (%s) before the one of %s ended (%s)", rows[i].machine, rows[i].slot, rows[i-1].machine, rows[i-1].finished)
		}
	}
	since := func(x time.Time) string { return fmt.Sprintf("%6.2fs ", x.Sub(changed).Seconds()) }
	t.Logf("in-place rollout of %d Machines, times from the MachineDeployment's change:", len(rows))
	t.Logf("(updating: Cluster API moved the Machine and marked it; slot: its NodeCycle started; reboot: requested from the agent;")
	t.Logf(" succeeded: new boot, files verified, uncordoned; done: Cluster API saw UpdateMachine done)")
	t.Logf("%-24s %-8s %-8s %-8s %-9s %-8s %s", "Machine", "updating", "slot", "reboot", "succeeded", "done", "boot ID")
	for _, r := range rows {
		t.Logf("%-24s %s %s %s %s  %s %s -> %s", r.machine, since(r.start), since(r.slot), since(r.requested), since(r.finished), since(r.end), short(r.bootFrom), short(r.bootTo))
	}
}

// TestAChangeNodecycleDoesNotCoverIsAReplacement: a file outside the
// directories changed in place makes Cluster API replace the Machines as
// usual; nodecycle opens no NodeCycle.
func TestAChangeNodecycleDoesNotCoverIsAReplacement(t *testing.T) {
	p := startPool(t)
	ctx := context.Background()
	const ns = "replaced"
	before, _ := rollout(t, p, ns, "pool", 2, "/etc/kubernetes/extra.conf", "a\n", "b\n")
	waitFor(t, 3*time.Minute, "the Machines replaced", func() (bool, string) {
		var list clusterv1.MachineList
		if err := k8s.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: "pool"}); err != nil {
			return false, err.Error()
		}
		fresh := 0
		for _, m := range list.Items {
			if !slices.ContainsFunc(before, func(b clusterv1.Machine) bool { return b.UID == m.UID }) && m.Status.NodeRef.IsDefined() && m.DeletionTimestamp.IsZero() {
				fresh++
			}
		}
		return fresh == 2 && len(list.Items) == 2, fmt.Sprintf("%d Machines, %d new with a node", len(list.Items), fresh)
	})
	var list v1alpha1.NodeCycleList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("nodecycle opened %d NodeCycles for a change it does not cover", len(list.Items))
	}
}

// TestAFailedUpdateIsReportedToClusterAPI: the node's agent cannot write
// the files (it runs without --host-root); the NodeCycle fails
// UpdateFailed without a reboot and uncordons the node, UpdateMachine
// answers Failure, and Cluster API marks the Machine's update failed and
// keeps the Machine. Once the agent can write and the failed NodeCycle is
// deleted, the next call opens a new one and the update completes.
func TestAFailedUpdateIsReportedToClusterAPI(t *testing.T) {
	p := startPool(t)
	ctx := context.Background()
	const ns = "failed"
	if err := optIn(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := capi.CreateCluster(ctx, ns, "c", env.Config); err != nil {
		t.Fatal(err)
	}
	machines := func() []clusterv1.Machine {
		t.Helper()
		return readyMachines(t, ns, "pool", 1)
	}
	if _, err := capi.CreateMachineDeploymentWith(ctx, ns, "c", "pool", 1, map[string]string{v1alpha1.AnnotationStrategy: "reboot"},
		sim.PoolOptions{MaxUnavailable: 1, BootstrapSpec: bootstrapSpec(sysctlFile, "a = 1\n")}); err != nil {
		t.Fatal(err)
	}
	m := machines()[0]
	node := m.Status.NodeRef.Name
	p.startAgent(node, "") // refuses updates
	if err := capi.CreateBootstrapTemplate(ctx, ns, "pool-v2", bootstrapSpec(sysctlFile, "a = 2\n")); err != nil {
		t.Fatal(err)
	}
	d := &clusterv1.MachineDeployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pool"}}
	if err := k8s.Patch(ctx, d, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"template":{"spec":{"bootstrap":{"configRef":{"name":"pool-v2"}}}}}}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "Cluster API to see the update failed", func() (bool, string) {
		got := &clusterv1.Machine{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(&m), got); err != nil {
			return false, err.Error()
		}
		c := conditionOf(got, clusterv1.MachineUpdatingCondition)
		return c != nil && c.Reason == clusterv1.MachineInPlaceUpdateFailedReason, condition(got, clusterv1.MachineUpdatingCondition)
	})
	nc := updateCycle(t, ns, m.Name)
	if nc.Status.Phase != v1alpha1.PhaseFailed || nc.Status.Reason != v1alpha1.ReasonUpdateFailed || !strings.Contains(nc.Status.Message, "--host-root") {
		t.Errorf("NodeCycle %s: %s %s %q, want Failed UpdateFailed naming --host-root", nc.Name, nc.Status.Phase, nc.Status.Reason, nc.Status.Message)
	}
	if n := node0(t, node); n.Spec.Unschedulable || p.kubelet.Reboots(node) != 0 {
		t.Errorf("node %s: cordoned %t, %d reboots; want uncordoned, never rebooted", node, n.Spec.Unschedulable, p.kubelet.Reboots(node))
	}
	if got := machines(); got[0].UID != m.UID {
		t.Errorf("the Machine was replaced after a failed update")
	}

	// The operator fixes the agent and deletes the failed NodeCycle.
	root := filepath.Join(t.TempDir(), node)
	write(t, root, sysctlFile, "a = 1\n")
	p.startAgent(node, root)
	if err := k8s.Delete(ctx, &nc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the update to complete after the retry", func() (bool, string) {
		got := &clusterv1.Machine{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(&m), got); err != nil {
			return false, err.Error()
		}
		_, inProgress := got.Annotations[clusterv1.UpdateInProgressAnnotation]
		return !inProgress && upToDate(got), condition(got, clusterv1.MachineUpdatingCondition)
	})
	if got := read(t, root, sysctlFile); got != "a = 2\n" || p.kubelet.Reboots(node) != 1 {
		t.Errorf("after the retry: file %q, %d reboots; want the new content and one reboot", got, p.kubelet.Reboots(node))
	}
}
