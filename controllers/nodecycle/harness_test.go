package nodecycle

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/settings"
	"github.com/nodecycle/nodecycle/power"
)

// The state-machine harness: the real Reconciler on controller-runtime's
// fake client (with the status subresource and the cache's indexes), a
// fake clock the test moves, and an in-memory power provider. It has no
// watches: a test reconciles until the NodeCycle stops changing.

const (
	testNamespace = "nodecycle-system"
	testNode      = "worker-1"
	testCycle     = "worker-1-cycle"
	testMachine   = "worker-1-machine"
)

var epoch = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

type harness struct {
	t      *testing.T
	ctx    context.Context
	c      client.Client
	clock  *clocktesting.FakeClock
	events *events.FakeRecorder
	power  *memPower
	r      *Reconciler
	cfg    settings.Config
	// machine makes the node a Cluster API Machine's (Target.Machine).
	machine string
	// resumed, when set, is called as a Machine's remediation resumes.
	resumed func()
	// intercept plays the API server's refusals.
	intercept interceptor.Funcs
}

type option func(*harness)

// withInterceptor makes the fake API server answer through f.
func withInterceptor(f interceptor.Funcs) option { return func(h *harness) { h.intercept = f } }

// withMachine puts the node behind a Cluster API Machine of a MachineSet.
func withMachine() option { return func(h *harness) { h.machine = testMachine } }

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	_ = clusterv1.AddToScheme(s)
	return s
}

func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background(), clock: clocktesting.NewFakeClock(epoch), events: events.NewFakeRecorder(1000),
		power: &memPower{state: map[string]power.PowerState{testNode: power.PowerOn}}, cfg: settings.DefaultConfig()}
	for _, o := range opts {
		o(h)
	}
	h.c = fake.NewClientBuilder().WithScheme(testScheme()).
		WithStatusSubresource(&v1alpha1.NodeCycle{}, &corev1.Node{}, &clusterv1.Machine{}).
		WithIndex(&v1alpha1.NodeCycle{}, cycles.IndexNodeName, func(o client.Object) []string { return []string{o.(*v1alpha1.NodeCycle).Spec.NodeName} }).
		WithIndex(&v1alpha1.NodeCycle{}, cycles.IndexClusterName, func(o client.Object) []string { return []string{o.(*v1alpha1.NodeCycle).Spec.ClusterName} }).
		WithIndex(&corev1.Node{}, nodes.IndexCordonedBy, nodes.CordonedByNodecycle).
		WithIndex(&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).
		WithInterceptorFuncs(h.intercept).
		Build()
	h.restart()
	h.create(testNodeObject(testNode, "boot-1"))
	h.create(agentPod(testNode))
	return h
}

// restart replaces the Reconciler with a new one on the same API objects,
// as a manager restart does: nothing in memory survives.
func (h *harness) restart(strategies ...Strategy) {
	registry := &power.Registry{}
	registry.Register("memory", func(power.Settings) (power.Provider, error) { return h.power, nil })
	local := cluster.Local{W: cluster.Workload{Client: h.c, Reader: h.c, AgentNamespace: testNamespace}, Recorder: h.events}
	var clusters cluster.Clusters = local
	if h.machine != "" {
		clusters = machineClusters{Local: local, machine: h.machine, resumed: h.resumed}
	}
	h.r = New(h.c, h.c, h.events, h.clock, h.cfg, clusters, registry, NewMetrics(nil, clusters))
	for _, s := range strategies {
		h.r.Strategies[s.Name()] = s
	}
}

func (h *harness) create(o client.Object) {
	h.t.Helper()
	if err := h.c.Create(h.ctx, o); err != nil {
		h.t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
	}
}

func testNodeObject(name, boot string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{v1alpha1.AnnotationCheckedBoot: boot}},
		Status: corev1.NodeStatus{
			NodeInfo: corev1.NodeSystemInfo{BootID: boot},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
				{Type: v1alpha1.ConditionRebootRequired, Status: corev1.ConditionTrue, Reason: string(v1alpha1.ReasonSentinelFilePresent)},
			},
		},
	}
}

func agentPod(node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "agent-" + node,
			Labels:          map[string]string{"app.kubernetes.io/name": "nodecycle", "app.kubernetes.io/component": "agent"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", UID: "ds", Controller: ptrTo(true)}}},
		Spec:   corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// workloadPod is a ReplicaSet's pod on the node; finalizers keep it
// terminating after its eviction.
func workloadPod(name, node string, finalizers ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name, Finalizers: finalizers,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "rs", Controller: ptrTo(true)}}},
		Spec: corev1.PodSpec{NodeName: node},
	}
}

func ptrTo[T any](v T) *T { return &v }

// open creates the node's NodeCycle with the manager's settings, ladder
// and power settings.
func (h *harness) open(ladder ...v1alpha1.Strategy) *v1alpha1.NodeCycle {
	h.t.Helper()
	spec := h.cfg.CycleSpec(testNode, nil)
	if len(ladder) > 0 {
		spec.Strategies = ladder
	}
	spec.PowerCycle = &v1alpha1.PowerCycleSpec{Provider: "memory", Machines: map[string]string{testNode: testNode},
		PowerTimeout: v1alpha1.NewDuration(5 * time.Minute), SoftOffTimeout: v1alpha1.NewDuration(time.Minute)}
	spec.BootID, spec.Attempt, spec.MachineName = "boot-1", 1, h.machine
	nc := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testCycle, UID: "uid-1",
		CreationTimestamp: metav1.NewTime(h.clock.Now())}, Spec: spec}
	h.create(nc)
	return nc
}

func (h *harness) reconcile() reconcile.Result {
	h.t.Helper()
	res, err := h.r.Reconcile(h.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: testNamespace, Name: testCycle}})
	if err != nil {
		h.t.Fatalf("reconcile in phase %s: %v", h.cycle().Status.Phase, err)
	}
	return res
}

// settle reconciles until the NodeCycle and its node stop changing, as the
// watches would, and returns the last result.
func (h *harness) settle() reconcile.Result {
	h.t.Helper()
	for i := 0; i < 50; i++ {
		res, changed := h.reconcileOnce()
		if !changed {
			return res
		}
	}
	h.t.Fatalf("the NodeCycle never settled; phase %s", h.cycle().Status.Phase)
	return reconcile.Result{}
}

// reconcileOnce reconciles and says whether the NodeCycle or its node
// changed (a watch would reconcile again at once).
func (h *harness) reconcileOnce() (reconcile.Result, bool) {
	h.t.Helper()
	before := h.cycle().ResourceVersion + "/" + h.node().ResourceVersion
	res := h.reconcile()
	after := h.cycle().ResourceVersion + "/" + h.node().ResourceVersion
	return res, after != before || res.RequeueAfter == conflictRetry
}

// runUntil reconciles, as watches and requeues would, until the NodeCycle
// reaches phase p. act, when given, plays the world between reconciles
// (a node that reboots); it says whether it changed something.
func (h *harness) runUntil(p v1alpha1.Phase, act ...func() bool) {
	h.t.Helper()
	for i := 0; i < 2000; i++ {
		if h.cycle().Status.Phase == p {
			return
		}
		res, changed := h.reconcileOnce()
		if changed || h.cycle().Status.Phase == p {
			continue
		}
		acted := false
		for _, a := range act {
			acted = a() || acted
		}
		if acted {
			continue
		}
		if res.RequeueAfter == 0 {
			h.t.Fatalf("waiting for phase %s: stuck in %s (%s)", p, h.cycle().Status.Phase, h.cycle().Status.Message)
		}
		h.clock.Step(res.RequeueAfter)
	}
	h.t.Fatalf("phase %s never reached; in %s (%s)", p, h.cycle().Status.Phase, h.cycle().Status.Message)
}

func (h *harness) cycle() *v1alpha1.NodeCycle {
	h.t.Helper()
	nc := &v1alpha1.NodeCycle{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: testCycle}, nc); err != nil {
		h.t.Fatalf("reading the NodeCycle: %v", err)
	}
	return nc
}

func (h *harness) node() *corev1.Node {
	h.t.Helper()
	n := &corev1.Node{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Name: testNode}, n); err != nil {
		return &corev1.Node{}
	}
	return n
}

// editNode changes the node as its kubelet or agent would.
func (h *harness) editNode(f func(*corev1.Node)) { h.editNode2(testNode, f) }

// editNode2 changes the named node as its kubelet or agent would.
func (h *harness) editNode2(name string, f func(*corev1.Node)) {
	h.t.Helper()
	get := func() *corev1.Node {
		n := &corev1.Node{}
		if err := h.c.Get(h.ctx, client.ObjectKey{Name: name}, n); err != nil {
			h.t.Fatalf("reading node %s: %v", name, err)
		}
		return n
	}
	n := get()
	f(n)
	if err := h.c.Update(h.ctx, n); err != nil {
		h.t.Fatalf("updating node: %v", err)
	}
	n = get() // the update answered with the stored status
	f(n)
	if err := h.c.Status().Update(h.ctx, n); err != nil {
		h.t.Fatalf("updating node status: %v", err)
	}
}

// boot makes the node run a new boot, Ready, with its agent pod started
// again and Ready on it (its other pods are the test's business).
func (h *harness) boot(id string) {
	h.editNode(func(n *corev1.Node) {
		n.Status.NodeInfo.BootID = id
		setCondition(n, corev1.NodeReady, corev1.ConditionTrue)
	})
	agent := &corev1.Pod{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: testNamespace, Name: "agent-" + testNode}, agent); err == nil {
		setPodReady(h, agent, corev1.ConditionTrue)
	}
}

// pod reads a pod.
func (h *harness) pod(namespace, name string) *corev1.Pod {
	h.t.Helper()
	p := &corev1.Pod{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: namespace, Name: name}, p); err != nil {
		h.t.Fatalf("reading pod %s: %v", name, err)
	}
	return p
}

// setPodReady writes the pod's Ready condition as of the harness' now.
func setPodReady(h *harness, p *corev1.Pod, st corev1.ConditionStatus) {
	h.t.Helper()
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(h.clock.Now())}}
	if err := h.c.Status().Update(h.ctx, p); err != nil {
		h.t.Fatalf("updating pod %s: %v", p.Name, err)
	}
}

func setCondition(n *corev1.Node, t corev1.NodeConditionType, s corev1.ConditionStatus) {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			n.Status.Conditions[i].Status = s
			return
		}
	}
	n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: t, Status: s})
}

// reasons are the reasons of the Events recorded so far, in order.
func (h *harness) reasons() []string {
	var out []string
	for {
		select {
		case e := <-h.events.Events:
			var typ, reason string
			_, _ = fmt.Sscanf(e, "%s %s", &typ, &reason)
			out = append(out, reason)
		default:
			return out
		}
	}
}

// phasesVisited lists the phases the NodeCycle went through, in order, from
// its recorded durations and its current phase.
func phasesVisited(nc *v1alpha1.NodeCycle) []v1alpha1.Phase {
	var out []v1alpha1.Phase
	for _, d := range nc.Status.PhaseDurations {
		out = append(out, d.Phase)
	}
	return append(out, nc.Status.Phase)
}
