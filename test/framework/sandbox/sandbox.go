package sandbox

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers"
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
