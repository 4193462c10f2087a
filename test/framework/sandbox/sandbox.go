package sandbox

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/internal/agent"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

//go:embed stages.yaml
var stages []byte

// Names of the sandbox's objects.
const (
	Namespace          = "nodecycle-system"
	DemoNamespace      = "demo"
	annotationPowerOff = "sandbox.nodecycle.io/powered-off"
)

// Options shape a sandbox run.
type Options struct {
	// Workers is the number of worker nodes (besides control-plane-1).
	Workers int
	// RebootAll makes every worker need a reboot in the demo.
	RebootAll bool
	// NoDemo starts the cluster only.
	NoDemo bool
	// Duration ends the run after this long; 0 runs until ctx ends.
	Duration time.Duration
	// ExitAfterDemo ends the run when the demo is done.
	ExitAfterDemo bool
	// DownTime is how long a simulated reboot keeps a node NotReady.
	DownTime time.Duration
	// EvictionRequests runs the control plane of the cooperative drains
	// (kube-apiserver and kube-controller-manager v1.38 with the
	// EvictionRequest API) and a database pod on worker-1 whose eviction
	// responder hands its primary over for a few seconds before it lets
	// the pod go.
	EvictionRequests bool
	Out              io.Writer
	Log              logr.Logger
}

// Report is what a run did, for callers that check it.
type Report struct {
	Dir        string
	Kubeconfig string
	Cycles     []v1alpha1.NodeCycle
	// RunningOn counts, per node, the demo pods that became Running after
	// the demo began: where the evicted pods went.
	RunningOn map[string]int
}

func (o *Options) defaults() {
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.DownTime == 0 {
		o.DownTime = 3 * time.Second
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o.Workers < 1 || o.Workers > 500 {
		return fmt.Errorf("--nodes must be between 1 and 500, got %d", o.Workers)
	}
	if o.Duration < 0 {
		return fmt.Errorf("--duration must not be negative, got %s", o.Duration)
	}
	return nil
}

// lifetime is the sandbox's context: ctx, ended after o.Duration when
// one is set.
func (o Options) lifetime(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.Duration > 0 {
		return context.WithTimeout(ctx, o.Duration)
	}
	return context.WithCancel(ctx)
}

// Run starts the sandbox, runs the demo unless told not to, and keeps the
// cluster running until ctx ends or the duration passes. Everything it
// started is stopped and its directory removed before it returns.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := o.lifetime(ctx)
	defer cancel()
	out := sim.NewPrinter(o.Out)
	out.Say("Starting the control plane (kube-apiserver, etcd, kube-controller-manager, kube-scheduler) on 127.0.0.1")
	start, controllers := localkube.Start, localkube.DefaultControllers
	if o.EvictionRequests {
		out.Say("... Kubernetes %s with the EvictionRequest API (lifecycle.k8s.io/v1alpha1) and its controllers", localkube.NextKubeVersion)
		start = func() (*localkube.Env, error) { return localkube.StartEvictionRequests(true) }
		controllers = append(controllers, localkube.EvictionRequestControllers...)
	}
	env, err := start()
	if err != nil {
		return nil, err
	}
	defer func() {
		cancel()
		_ = env.Stop()
		out.Say("Stopped; removed %s", env.Dir)
	}()
	rep := &Report{Dir: env.Dir, RunningOn: map[string]int{}}
	if rep.Kubeconfig, err = env.AdminKubeconfig(); err != nil {
		return rep, err
	}
	if err = startNodeSimulation(env, rep.Kubeconfig, controllers); err != nil {
		return rep, err
	}
	pointer, err := writePointer(env.Dir)
	if err != nil {
		return rep, err
	}
	defer os.Remove(pointer)

	c := env.Client
	names := []string{"control-plane-1"}
	for i := 1; i <= o.Workers; i++ {
		names = append(names, fmt.Sprintf("worker-%d", i))
	}
	out.Say("Creating nodes %s (simulated by kwok)", strings.Join(names, ", "))
	if err = createNodes(ctx, c, names); err != nil {
		return rep, err
	}
	if err = c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}); err != nil {
		return rep, err
	}
	mgrDone, err := startManager(ctx, env.Config, "--namespace="+Namespace, "--drain-timeout=2m", "--reboot-timeout=2m", "--agent-pod-selector=")
	if err != nil {
		return rep, err
	}
	out.Say("Started the nodecycle manager and one agent per node")
	agents := map[string]string{} // node -> sentinel
	for _, n := range names {
		sentinel, err := startAgent(ctx, env, env.Clientset, n, o)
		if err != nil {
			return rep, err
		}
		agents[n] = sentinel
	}
	if err := deployWorkload(ctx, c); err != nil {
		return rep, err
	}
	out.Say("nginx Deployment (4 replicas) and its PodDisruptionBudget (maxUnavailable 1) are running on the workers")
	if o.EvictionRequests {
		if err := deployDatabase(ctx, c); err != nil {
			return rep, err
		}
		r := &sim.Responder{Name: DatabaseResponder, Namespace: DemoNamespace, Heartbeats: 5, Every: time.Second, Message: "moving the primary to another node"}
		go r.Run(ctx, c)
		out.Say("Pod demo/db-0 runs on worker-1; its eviction responder %s takes 5 s to hand the primary over", DatabaseResponder)
	}

	if !o.NoDemo {
		targets := []string{"worker-1"}
		if o.RebootAll {
			targets = names[1:]
		}
		if err := demo(ctx, env, out, rep, targets, agents); err != nil {
			return rep, err
		}
	}
	printUsage(o.Out, rep, names)
	return keepRunning(ctx, o, rep, mgrDone)
}

// startManager runs the real manager (no metrics, probes nor leader
// election) with args until ctx ends, once its cache has synced; the
// channel receives the end of its run.
func startManager(ctx context.Context, cfg *rest.Config, args ...string) (<-chan error, error) {
	opts, err := controllers.ParseOptions(append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0", "--leader-elect=false"}, args...),
		func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		return nil, err
	}
	opts.Registry, opts.SkipNameValidation = prometheus.NewRegistry(), true
	mgr, err := controllers.New(ctx, cfg, opts, clock.RealClock{})
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	<-mgr.Elected()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("manager cache did not sync: %w", ctx.Err())
	}
	return done, nil
}

// keepRunning returns at once after a demo run (ExitAfterDemo), else when
// ctx ends, or with an error when the manager stopped by itself.
func keepRunning(ctx context.Context, o Options, rep *Report, mgrDone <-chan error) (*Report, error) {
	if o.ExitAfterDemo {
		return rep, nil
	}
	select {
	case <-ctx.Done():
	case err := <-mgrDone:
		return rep, fmt.Errorf("manager stopped: %w", err)
	}
	return rep, nil
}

// startNodeSimulation runs kube-controller-manager (with the node lifecycle
// controller), kube-scheduler and kwok.
func startNodeSimulation(env *localkube.Env, kubeconfig string, controllers []string) error {
	if err := env.StartControllers(append(slices.Clone(controllers), "node-lifecycle-controller")...); err != nil {
		return err
	}
	stagesPath := filepath.Join(env.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(stagesPath, stages, 0o600); err != nil {
		return err
	}
	return env.StartProcess("kwok", "--kubeconfig="+kubeconfig, "--manage-all-nodes=true",
		"--config="+stagesPath, "--server-address=127.0.0.1:0", "--node-lease-duration-seconds=40")
}

// writePointer records the running sandbox's directory, so that
// `sandbox require-reboot` finds the sentinels.
func writePointer(dir string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(home, ".cache", "nodecycle", "sandbox-current")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, os.WriteFile(p, []byte(dir+"\n"), 0o644)
}

// SentinelPath is the sentinel file of node in the running sandbox.
func SentinelPath(node string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(home, ".cache", "nodecycle", "sandbox-current"))
	if err != nil {
		return "", errors.New("no sandbox is running (start one with 'make sandbox')")
	}
	dir := filepath.Join(strings.TrimSpace(string(b)), "nodes", node)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("the running sandbox has no node %q", node)
	}
	return filepath.Join(dir, "reboot-required"), nil
}

func createNodes(ctx context.Context, c client.Client, names []string) error {
	for _, name := range names {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, "type": "kwok"}}}
		if strings.HasPrefix(name, "control-plane") {
			n.Labels["node-role.kubernetes.io/control-plane"] = ""
			n.Spec.Taints = []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
		}
		if err := c.Create(ctx, n); err != nil {
			return fmt.Errorf("creating node %s: %w", name, err)
		}
	}
	// kwok initialises each node (Ready, capacity); the boot ID is then set
	// once, as a kubelet reports it.
	for _, name := range names {
		if err := waitNode(ctx, c, name, func(n *corev1.Node) bool { return nodes.IsReady(n) }); err != nil {
			return fmt.Errorf("node %s did not become Ready (is kwok running? see its log): %w", name, err)
		}
		if err := setBootID(ctx, c, name); err != nil {
			return err
		}
	}
	return nil
}

func setBootID(ctx context.Context, c client.Client, name string) error {
	id := uuid.NewString()
	patch := fmt.Sprintf(`{"status":{"nodeInfo":{"bootID":%q}}}`, id)
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Status().Patch(ctx, n, client.RawPatch(types.StrategicMergePatchType, []byte(patch))); err != nil {
			return false, nil
		}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
			return false, nil
		}
		return n.Status.NodeInfo.BootID == id, nil
	})
}

func waitNode(ctx context.Context, c client.Client, name string, ok func(*corev1.Node) bool) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n := &corev1.Node{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return ok(n), nil
	})
}

// startAgent runs a real agent for node; its reboot command is a simulated
// reboot of the kwok node.
func startAgent(ctx context.Context, env *localkube.Env, cs kubernetes.Interface, node string, o Options) (string, error) {
	dir := filepath.Join(env.Dir, "nodes", node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sentinel := filepath.Join(dir, "reboot-required")
	a := &agent.Agent{
		NodeName:      node,
		Client:        cs,
		Checker:       agent.FileChecker{Path: sentinel},
		Rebooter:      &kwokReboot{c: env.Client, node: node, sentinel: sentinel, downTime: o.DownTime},
		SentinelFile:  sentinel,
		Namespace:     Namespace,
		RecheckPeriod: time.Minute,
		Log:           o.Log.WithName("agent"),
	}
	ready := a.Ready()
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	select {
	case <-ready:
		return sentinel, nil
	case err := <-errc:
		return "", fmt.Errorf("agent on %s: %w", node, err)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// kwokReboot reboots a kwok node as a real one would look from the API:
// Ready=False while it is down, then a new boot ID and Ready=True. Like
// `systemctl reboot` it returns at once. A reboot clears /var/run, so the
// sentinel goes too.
type kwokReboot struct {
	c        client.Client
	node     string
	sentinel string
	downTime time.Duration
}

func (k *kwokReboot) Reboot(ctx context.Context) error {
	go func() {
		_ = os.Remove(k.sentinel)
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.node}}
		down := nodes.AnnotationsPatch(map[string]*string{annotationPowerOff: ptr.To("true")})
		if err := k.c.Patch(ctx, n, client.RawPatch(types.MergePatchType, down)); err != nil {
			return
		}
		notReady := nodes.ConditionPatch(nil, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse,
			Reason: "KubeletNotReady", Message: "node is rebooting"}, time.Now())
		_ = k.c.Status().Patch(ctx, n, client.RawPatch(types.StrategicMergePatchType, notReady))
		select {
		case <-ctx.Done():
			return
		case <-time.After(k.downTime):
		}
		_ = setBootID(ctx, k.c, k.node)
		up := nodes.AnnotationsPatch(map[string]*string{annotationPowerOff: nil})
		_ = k.c.Patch(ctx, n, client.RawPatch(types.MergePatchType, up))
	}()
	return nil
}

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
