package sandbox

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

func deployWorkload(ctx context.Context, c client.Client) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DemoNamespace}}); err != nil {
		return err
	}
	labels := map[string]string{"app": "nginx"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx", Namespace: DemoNamespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(4)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.ScheduleAnyway,
						LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
					}},
					TerminationGracePeriodSeconds: ptr.To(int64(2)),
					Containers:                    []corev1.Container{{Name: "nginx", Image: "nginx:1.27"}},
				},
			},
		},
	}
	if err := c.Create(ctx, dep); err != nil {
		return err
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx", Namespace: DemoNamespace},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: labels},
		},
	}
	if err := c.Create(ctx, pdb); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
			return false, err
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(pdb), pdb); err != nil {
			return false, err
		}
		return dep.Status.AvailableReplicas == 4 && pdb.Status.DisruptionsAllowed == 1, nil
	})
}

// demo makes the targets need a reboot and prints the timeline until each
// has a finished NodeCycle.
func demo(ctx context.Context, env *localkube.Env, out *sim.Printer, rep *Report, targets []string, sentinels map[string]string) error {
	t, err := sim.StartTimeline(ctx, env.Config, out, Namespace, DemoNamespace)
	if err != nil {
		return err
	}
	out.Restart()
	fmt.Fprintf(out.Writer(), "\nDemo: %s need%s a reboot\n\n", strings.Join(targets, ", "), map[bool]string{true: "", false: "s"}[len(targets) > 1])
	for _, n := range targets {
		if err = os.WriteFile(sentinels[n], []byte("*** System restart required ***\n"), 0o644); err != nil {
			return err
		}
		out.Event(n, "sentinel file created: %s", sentinels[n])
	}
	var cycles []v1alpha1.NodeCycle
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err = env.Exited(); err != nil {
			return false, err
		}
		var list v1alpha1.NodeCycleList
		if err = env.Client.List(ctx, &list, client.InNamespace(Namespace)); err != nil {
			return false, nil
		}
		cycles = cycles[:0]
		for _, nc := range list.Items {
			if nc.Status.Phase.Terminal() {
				cycles = append(cycles, nc)
			}
		}
		return len(cycles) >= len(targets), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the demo to finish: %w", err)
	}
	time.Sleep(time.Second) // let the last pod and node events print
	t.Stop()
	sort.Slice(cycles, func(i, j int) bool { return cycles[i].Status.StartTime.Before(cycles[j].Status.StartTime) })
	rep.Cycles = cycles
	rep.RunningOn = t.RunningOn()
	printSummary(out.Writer(), cycles, rep.RunningOn)
	return nil
}

func printSummary(w io.Writer, cycles []v1alpha1.NodeCycle, runningOn map[string]int) {
	fmt.Fprintf(w, "\nSummary\n")
	for _, nc := range cycles {
		total := time.Duration(0)
		if nc.Status.StartTime != nil && nc.Status.CompletionTime != nil {
			total = nc.Status.CompletionTime.Sub(nc.Status.StartTime.Time)
		}
		fmt.Fprintf(w, "  %s: %s in %s (boot ID %s -> %s)\n", nc.Spec.NodeName, nc.Status.Phase, total.Round(time.Millisecond),
			sim.Short(nc.Status.BootIDBefore), sim.Short(nc.Status.BootIDAfter))
		for _, d := range nc.Status.PhaseDurations {
			fmt.Fprintf(w, "    %-20s %s\n", d.Phase, d.Duration.Duration)
		}
	}
	var where []string
	for n, c := range runningOn {
		where = append(where, fmt.Sprintf("%s: %d", n, c))
	}
	sort.Strings(where)
	fmt.Fprintf(w, "  nginx pods started during the demo, by node: %s\n", strings.Join(where, ", "))
}

func printUsage(w io.Writer, rep *Report, names []string) {
	exe := "go run ./cmd/sandbox"
	// The kubectl built with the control plane when the machine has none.
	kubectl := "kubectl"
	if _, err := exec.LookPath("kubectl"); err != nil {
		kubectl = filepath.Join(localkube.Assets(), "kubectl")
	}
	fmt.Fprintf(w, `
The sandbox keeps running; stop it with Ctrl-C (everything it started stops, %[1]s is removed).

  export KUBECONFIG=%[2]s
  %[3]s get nodes
  %[3]s describe node worker-1
  %[3]s get nodecycles -A
  %[3]s get pods -n %[4]s -o wide

Make another node need a reboot:
  %[5]s require-reboot %[6]s
`, rep.Dir, rep.Kubeconfig, kubectl, DemoNamespace, exe, names[len(names)-1])
}

// DatabaseResponder is the eviction responder of the sandbox's database
// pod (--eviction-requests).
const DatabaseResponder = "demo.nodecycle.io/db-failover"

// deployDatabase runs pod demo/db-0 on worker-1 with an eviction responder
// (spec.evictionResponders, written as the API serves it: the module's
// k8s.io/api has no such field yet) and waits until it runs.
func deployDatabase(ctx context.Context, c client.Client) error {
	pod := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "db-0", "namespace": DemoNamespace, "labels": map[string]any{"app": "db"}},
		"spec": map[string]any{
			"nodeName":                      "worker-1",
			"terminationGracePeriodSeconds": int64(2),
			"containers":                    []any{map[string]any{"name": "db", "image": "postgres:17"}},
			"evictionResponders":            []any{map[string]any{"name": DatabaseResponder, "priority": int64(5000)}},
		},
	}}
	if err := c.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating pod demo/db-0: %w", err)
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: DemoNamespace, Name: "db-0"}, p); err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.PodRunning, nil
	})
}
