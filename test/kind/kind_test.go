//go:build e2e

package kind

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// drainTimeout is the manager's --drain-timeout here: long enough for the
// sample's evictions, short enough to watch a blocked drain give up.
const drainTimeout = 40 * time.Second

var cluster *Cluster

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	flags := map[string]string{"drain-timeout": drainTimeout.String()}
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		// The benchmark reboots one node again and again on purpose: not
		// the reboot loop nodecycle quarantines a node for.
		flags["reboot-loop-window"] = "1s"
	}
	var err error
	cluster, err = Up(ctx, "nodecycle-e2e", flags, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv("KIND_KEEP") == "" {
		defer cluster.Delete()
	} else {
		defer fmt.Printf("kind cluster %s kept: kubectl --kubeconfig %s\n", cluster.Name, cluster.Kubeconfig)
	}
	return m.Run()
}

// TestKind runs the scenarios in order on the one cluster.
func TestKind(t *testing.T) {
	t.Run("seed: worker 1 needs a reboot", testSeed)
	t.Run("every worker at once: one at a time", testEveryWorker)
	t.Run("a drain blocked by a PodDisruptionBudget gives up", testBlockedDrain)
}

// snapshot is a node's state before a scenario.
type snapshot struct {
	container Container
	bootID    string
	pods      map[string]string
}

func take(t *testing.T, ctx context.Context, node string) snapshot {
	t.Helper()
	ctr, err := cluster.Container(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	n, err := cluster.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := cluster.PodsOn(ctx, SampleNamespace, node)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{container: ctr, bootID: n.Status.NodeInfo.BootID, pods: pods}
}

// checkRebooted checks that node went through a whole verified reboot.
func checkRebooted(t *testing.T, ctx context.Context, nw *NodeWatch, node string, before snapshot, nc *v1alpha1.NodeCycle) {
	t.Helper()
	if nc.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Fatalf("NodeCycle %s of %s ended %s: %s", nc.Name, node, nc.Status.Phase, nc.Status.Message)
	}
	after := take(t, ctx, node)
	if after.container.Restarts <= before.container.Restarts || after.container.StartedAt == before.container.StartedAt {
		t.Errorf("%s: container not restarted by its reboot (restarts %d -> %d, started %s -> %s)", node,
			before.container.Restarts, after.container.Restarts, before.container.StartedAt, after.container.StartedAt)
	}
	if after.bootID == before.bootID || nc.Status.BootIDBefore != before.bootID || nc.Status.BootIDAfter != after.bootID {
		t.Errorf("%s: boot ID %s -> %s, NodeCycle recorded %s -> %s", node, before.bootID, after.bootID, nc.Status.BootIDBefore, nc.Status.BootIDAfter)
	}
	if after.container.IP != before.container.IP {
		t.Errorf("%s: address changed across the reboot: %s -> %s", node, before.container.IP, after.container.IP)
	}
	for uid, name := range before.pods {
		if _, still := after.pods[uid]; still {
			t.Errorf("%s: pod %s survived the drain", node, name)
		}
	}
	for _, what := range []string{MarkCordoned, MarkRequested, MarkAcknowledged, MarkNewBootID, MarkUncordoned} {
		if len(nw.Marks(node, what)) == 0 {
			t.Errorf("%s: the watch never saw %s", node, what)
		}
	}
	n, err := cluster.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Unschedulable {
		t.Errorf("%s: still cordoned", node)
	}
	if err := cluster.WaitAvailable(ctx); err != nil {
		t.Errorf("sample-deployment not whole again: %v", err)
	}
}

// checkUntouched checks that node was neither cordoned nor rebooted.
func checkUntouched(t *testing.T, ctx context.Context, nw *NodeWatch, node string, before snapshot) {
	t.Helper()
	after := take(t, ctx, node)
	if c := nw.Marks(node, MarkCordoned); len(c) > 0 {
		t.Errorf("%s: cordoned at %v", node, c)
	}
	if after.bootID != before.bootID || after.container.Restarts != before.container.Restarts {
		t.Errorf("%s: rebooted (boot ID %s -> %s, restarts %d -> %d)", node, before.bootID, after.bootID,
			before.container.Restarts, after.container.Restarts)
	}
}

// begin starts a scenario: it prints its headline and starts the node
// watch and the printed timeline; times count from the returned start.
func begin(t *testing.T, ctx context.Context, format string, args ...any) (*NodeWatch, *sim.Timeline, time.Time) {
	t.Helper()
	nw, err := cluster.WatchNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := sim.StartTimeline(ctx, cluster.Config, sim.NewPrinter(os.Stdout), Namespace, SampleNamespace)
	if err != nil {
		nw.Stop()
		t.Fatal(err)
	}
	fmt.Printf(format, args...)
	return nw, tl, time.Now()
}

func testSeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	target, other := cluster.Workers[0], cluster.Workers[1]
	before, otherBefore := take(t, ctx, target), take(t, ctx, other)
	if len(before.pods) == 0 {
		t.Fatalf("no sample pod on %s to drain", target)
	}
	pw, err := cluster.WatchPods(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Stop()
	nw, tl, start := begin(t, ctx, "\n%s needs a reboot: touch %s\n", target, SentinelPath)
	defer nw.Stop()
	if err = cluster.RequireReboot(ctx, target); err != nil {
		t.Fatal(err)
	}
	nc, err := cluster.WaitCycle(ctx, target, start, 8*time.Minute)
	time.Sleep(time.Second) // the last Events and pod starts reach the timeline
	tl.Stop()
	if err != nil {
		t.Fatal(err)
	}
	checkRebooted(t, ctx, nw, target, before, nc)
	checkUntouched(t, ctx, nw, other, otherBefore)
	if o := nw.Overlaps(); len(o) > 0 {
		t.Errorf("more than one node unschedulable: %v", o)
	}
	t.Logf("sentinel -> uncordoned %.1fs; NodeCycle phases: %s", nw.First(target, MarkUncordoned).Sub(start).Seconds(), phases(nc))
	checkServingBeforeUncordon(t, nw, pw, target)

	describe, err := cluster.Kubectl(ctx, "describe", "node", target)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RebootRequired", "MaintenanceInProgress", string(v1alpha1.ReasonMaintenanceCompleted),
		string(v1alpha1.ReasonCordoned), string(v1alpha1.ReasonRebootVerified), string(v1alpha1.ReasonUncordoned)} {
		if !strings.Contains(describe, want) {
			t.Errorf("kubectl describe node %s does not show %s:\n%s", target, want, describe)
		}
	}
}

// checkServingBeforeUncordon checks that the rebooted node was uncordoned
// only after kube-proxy's and the agent's pods on it were Ready again on
// the new boot (both from watches).
func checkServingBeforeUncordon(t *testing.T, nw *NodeWatch, pw *PodWatch, node string) {
	t.Helper()
	newBoot, uncordoned := nw.First(node, MarkNewBootID), nw.First(node, MarkUncordoned)
	for what, pick := range map[string]func(*corev1.Pod) bool{
		"kube-proxy": func(p *corev1.Pod) bool {
			return p.Namespace == "kube-system" && strings.HasPrefix(p.Name, "kube-proxy-")
		},
		"agent": func(p *corev1.Pod) bool { return p.Labels["app.kubernetes.io/component"] == "agent" },
	} {
		pods := pw.Pods(pick)
		if len(pods) != 1 {
			t.Errorf("%s: %d %s pods seen on the node: %v", node, len(pods), what, pods)
			continue
		}
		ready := pw.ReadyAfter(pods[0], newBoot)
		switch {
		case ready.IsZero():
			t.Errorf("%s: %s pod %s never seen Ready on the new boot", node, what, pods[0])
		case !uncordoned.After(ready):
			t.Errorf("%s: uncordoned at %s, before its %s pod %s was Ready at %s", node, uncordoned.Format(time.StampMilli), what, pods[0], ready.Format(time.StampMilli))
		default:
			t.Logf("%s: new boot ID -> %s pod Ready %.1fs -> uncordoned %.3fs later", node, what, ready.Sub(newBoot).Seconds(), uncordoned.Sub(ready).Seconds())
		}
	}
}

func testEveryWorker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	before := map[string]snapshot{}
	for _, w := range cluster.Workers {
		before[w] = take(t, ctx, w)
	}
	nw, tl, start := begin(t, ctx, "\nevery worker needs a reboot: %s\n", strings.Join(cluster.Workers, ", "))
	defer nw.Stop()
	for _, w := range cluster.Workers {
		if err := cluster.RequireReboot(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	cycles := map[string]*v1alpha1.NodeCycle{}
	for _, w := range cluster.Workers {
		nc, err := cluster.WaitCycle(ctx, w, start, 12*time.Minute)
		if err != nil {
			tl.Stop()
			t.Fatal(err)
		}
		cycles[w] = nc
	}
	time.Sleep(time.Second)
	tl.Stop()
	for _, w := range cluster.Workers {
		checkRebooted(t, ctx, nw, w, before[w], cycles[w])
	}
	if o := nw.Overlaps(); len(o) > 0 {
		t.Errorf("more than one node unschedulable: %v", o)
	}
	// One at a time: the second cordon comes after the first uncordon.
	a, b := cluster.Workers[0], cluster.Workers[1]
	if nw.First(b, MarkCordoned).Before(nw.First(a, MarkCordoned)) {
		a, b = b, a
	}
	if !nw.First(b, MarkCordoned).After(nw.First(a, MarkUncordoned)) {
		t.Errorf("%s cordoned at %s before %s was uncordoned at %s", b, nw.First(b, MarkCordoned), a, nw.First(a, MarkUncordoned))
	}
	t.Logf("both workers rebooted in %.1fs; dead time between them %.1fs", time.Since(start).Seconds(),
		nw.First(b, MarkCordoned).Sub(nw.First(a, MarkUncordoned)).Seconds())
}

func testBlockedDrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	target := cluster.Workers[1]
	// A single replica on the target with a budget that allows no disruption.
	labels := map[string]string{"app": "blocked"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "blocked", Namespace: SampleNamespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector:                  map[string]string{"kubernetes.io/hostname": target},
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers:                    []corev1.Container{{Name: "web", Image: SampleImage, ImagePullPolicy: corev1.PullNever}},
				},
			},
		},
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "blocked", Namespace: SampleNamespace},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}
	for _, o := range []client.Object{d, pdb} {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		_ = cluster.Client.Delete(context.Background(), pdb)
		_ = cluster.Client.Delete(context.Background(), d)
	}()
	if _, err := cluster.Kubectl(ctx, "-n", SampleNamespace, "rollout", "status", "deployment/blocked", "--timeout=2m"); err != nil {
		t.Fatal(err)
	}
	before := take(t, ctx, target)
	nw, tl, start := begin(t, ctx, "\n%s needs a reboot, but pod blocked has a budget of no disruption\n", target)
	defer nw.Stop()
	if err := cluster.RequireReboot(ctx, target); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cluster.ClearSentinel(context.Background(), target) }()
	nc, err := cluster.WaitCycle(ctx, target, start, 5*time.Minute)
	time.Sleep(time.Second)
	tl.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if nc.Status.Phase != v1alpha1.PhaseFailed || nc.Status.Reason != v1alpha1.ReasonDrainTimeout {
		t.Errorf("NodeCycle ended %s (%s), want Failed (DrainTimeout): %s", nc.Status.Phase, nc.Status.Reason, nc.Status.Message)
	}
	took := nc.Status.CompletionTime.Sub(nc.Status.StartTime.Time)
	if took < drainTimeout {
		t.Errorf("gave up after %s, before the drain timeout %s", took, drainTimeout)
	}
	after := take(t, ctx, target)
	if after.bootID != before.bootID || after.container.Restarts != before.container.Restarts {
		t.Errorf("rebooted although the drain failed (boot ID %s -> %s)", before.bootID, after.bootID)
	}
	n, err := cluster.Clientset.CoreV1().Nodes().Get(ctx, target, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Unschedulable || len(nw.Marks(target, MarkUncordoned)) == 0 {
		t.Errorf("not uncordoned after the failed drain (uncordons seen: %v)", nw.Marks(target, MarkUncordoned))
	}
	if _, asked := n.Annotations[v1alpha1.AnnotationRebootRequest]; asked {
		t.Errorf("a reboot was requested: %v", n.Annotations)
	}
	if slices.ContainsFunc(nw.BootIDs(target), func(id string) bool { return id != before.bootID }) {
		t.Errorf("boot IDs seen: %v", nw.BootIDs(target))
	}
	t.Logf("drain gave up after %.1fs (timeout %s): %s", took.Seconds(), drainTimeout, nc.Status.Message)
}

// phases lists a NodeCycle's phase durations.
func phases(nc *v1alpha1.NodeCycle) string {
	var s []string
	for _, p := range nc.Status.PhaseDurations {
		s = append(s, fmt.Sprintf("%s %s", p.Phase, p.Duration.Round(time.Millisecond)))
	}
	return strings.Join(s, ", ")
}
