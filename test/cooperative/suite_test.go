// Package cooperative tests the drain through EvictionRequests on the real
// kube-apiserver and kube-controller-manager that serve and act on them
// (lifecycle.k8s.io/v1alpha1, feature gate EvictionRequestAPI): the
// evictionrequest-controller turns nodecycle's requests into Evictions,
// test responders play a stateful workload's operator, and the cluster's
// imperative evictor calls the Eviction API, PodDisruptionBudgets
// included. Nodes are simulated kubelets; the manager is the real one.
package cooperative

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	lifecyclev1alpha1 "github.com/nodecycle/nodecycle/internal/apis/lifecycle/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/drain"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// env serves EvictionRequests; its controller manager acts on them.
var env *localkube.Env

func TestMain(m *testing.M) {
	framework.SetLogger(os.Stderr)
	var err error
	if env, err = startEnv(true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// startEnv starts the control plane of NextKubeVersion, with the
// EvictionRequest API and its controllers when gate is set.
func startEnv(gate bool) (*localkube.Env, error) {
	e, err := localkube.StartEvictionRequests(gate)
	if err != nil {
		return nil, err
	}
	controllers := []string{"disruption-controller"}
	if gate {
		controllers = localkube.EvictionRequestControllers
	}
	if err := e.StartControllers(controllers...); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

const runLabel = "nodecycle-test/run"

// testCluster is one namespace with one simulated node, whose kubelet
// reboots it on the manager's request.
type testCluster struct {
	t    testing.TB
	g    Gomega
	env  *localkube.Env
	ctx  context.Context
	name string // the namespace of its pods (and NodeCycles, locally)
	// nodeName is its node.
	nodeName string
}

func newTestCluster(t testing.TB, e *localkube.Env, name string) *testCluster {
	t.Helper()
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(90 * time.Second)
	g.SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &testCluster{t: t, g: g, env: e, ctx: ctx, name: name, nodeName: name + "-1"}
	g.Expect(e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	k := &sim.Kubelet{Client: e.Clientset, Selector: labels.SelectorFromSet(labels.Set{runLabel: name}), DownTime: 300 * time.Millisecond, RebootOnRequest: true}
	go k.Run(ctx)
	g.Expect(sim.CreateNode(ctx, e.Clientset, c.node(), map[string]string{runLabel: name})).To(Succeed())
	return c
}

func (c *testCluster) node() string { return c.nodeName }

// flags are the manager's flags for the cluster: its namespace and node,
// bare test pods evicted, a fast retry.
func (c *testCluster) flags(extra ...string) []string {
	return append([]string{"--namespace=" + c.name, "--node-selector=" + runLabel + "=" + c.name, "--agent-pod-selector=",
		"--evict-unmanaged-pods", "--reboot-timeout=1m", "--retry-backoff=1s", "--max-retry-backoff=2s"}, extra...)
}

// startManager runs the real manager in the test process.
func (c *testCluster) startManager(extra ...string) {
	c.t.Helper()
	stop, _, err := framework.StartManager(c.env.Config, os.Stderr, c.flags(extra...)...)
	c.g.Expect(err).NotTo(HaveOccurred())
	c.t.Cleanup(func() { _ = stop() })
}

// pod runs a bare pod on the node; responders are its
// spec.evictionResponders (name -> priority), written as the API serves
// them (the module's k8s.io/api has no such field yet).
func (c *testCluster) pod(name string, lbls map[string]string, responders map[string]int64) *corev1.Pod {
	c.t.Helper()
	spec := map[string]any{
		"nodeName":                      c.node(),
		"terminationGracePeriodSeconds": int64(1),
		"containers":                    []any{map[string]any{"name": "app", "image": "registry.invalid/app:1"}},
	}
	var names []string
	for n := range responders {
		names = append(names, n)
	}
	sort.Strings(names)
	var rs []any
	for _, n := range names {
		rs = append(rs, map[string]any{"name": n, "priority": responders[n]})
	}
	if len(rs) > 0 {
		spec["evictionResponders"] = rs
	}
	meta := map[string]any{"name": name, "namespace": c.name}
	if len(lbls) > 0 {
		l := map[string]any{}
		for k, v := range lbls {
			l[k] = v
		}
		meta["labels"] = l
	}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}}
	c.g.Expect(c.env.Client.Create(c.ctx, u)).To(Succeed())
	pod := &corev1.Pod{}
	c.g.Eventually(func(g Gomega) {
		g.Expect(c.env.Client.Get(c.ctx, client.ObjectKey{Namespace: c.name, Name: name}, pod)).To(Succeed())
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
	}).Should(Succeed())
	return pod
}

// pdb keeps minAvailable of the pods labelled app=name.
func (c *testCluster) pdb(name string, minAvailable int) *policyv1.PodDisruptionBudget {
	c.t.Helper()
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.name},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(int32(minAvailable))),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}},
	}
	c.g.Expect(c.env.Client.Create(c.ctx, pdb)).To(Succeed())
	c.g.Eventually(func(g Gomega) {
		g.Expect(c.env.Client.Get(c.ctx, client.ObjectKeyFromObject(pdb), pdb)).To(Succeed())
		g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
	}).Should(Succeed())
	return pdb
}

func (c *testCluster) requireReboot() {
	c.t.Helper()
	c.g.Expect(sim.RequireReboot(c.ctx, c.env.Client, c.node())).To(Succeed())
}

// cycle is the node's NodeCycle (there is one per test).
func (c *testCluster) cycle() *v1alpha1.NodeCycle {
	var list v1alpha1.NodeCycleList
	if err := c.env.Client.List(c.ctx, &list, client.InNamespace(c.name)); err != nil || len(list.Items) == 0 {
		return nil
	}
	return &list.Items[0]
}

func (c *testCluster) phase() v1alpha1.Phase {
	if nc := c.cycle(); nc != nil {
		return nc.Status.Phase
	}
	return ""
}

func (c *testCluster) message() string {
	if nc := c.cycle(); nc != nil {
		return nc.Status.Message
	}
	return ""
}

// request is nodecycle's EvictionRequest for the pod; nil when there is none.
func (c *testCluster) request(pod *corev1.Pod) *lifecyclev1alpha1.EvictionRequest {
	er := &lifecyclev1alpha1.EvictionRequest{}
	if err := c.env.Client.Get(c.ctx, client.ObjectKey{Namespace: c.name, Name: drain.RequestName(pod)}, er); err != nil {
		return nil
	}
	return er
}

// requests lists the EvictionRequests of the namespace.
func (c *testCluster) requests() []lifecyclev1alpha1.EvictionRequest {
	var list lifecyclev1alpha1.EvictionRequestList
	c.g.Expect(c.env.Client.List(c.ctx, &list, client.InNamespace(c.name))).To(Succeed())
	return list.Items
}

// eviction is the cluster's Eviction of the pod; nil when there is none.
func (c *testCluster) eviction(pod *corev1.Pod) *lifecyclev1alpha1.Eviction {
	var list lifecyclev1alpha1.EvictionList
	if err := c.env.Client.List(c.ctx, &list, client.InNamespace(c.name)); err != nil {
		return nil
	}
	for i := range list.Items {
		if t := list.Items[i].Spec.Target.Pod; t != nil && t.UID == pod.UID {
			return &list.Items[i]
		}
	}
	return nil
}

// gone reports whether the pod no longer exists (or is a newer pod).
func (c *testCluster) gone(pod *corev1.Pod) func() bool {
	return func() bool {
		p := &corev1.Pod{}
		err := c.env.Client.Get(c.ctx, client.ObjectKeyFromObject(pod), p)
		return apierrors.IsNotFound(err) || (err == nil && p.UID != pod.UID)
	}
}

// terminating reports whether the pod is being deleted.
func (c *testCluster) terminating(pod *corev1.Pod) bool {
	p := &corev1.Pod{}
	if err := c.env.Client.Get(c.ctx, client.ObjectKeyFromObject(pod), p); err != nil {
		return true
	}
	return p.DeletionTimestamp != nil
}

// events lists the messages of the Events of reason in the namespace and
// on the node.
func (c *testCluster) events(reason v1alpha1.Reason) []string {
	list, err := c.env.Clientset.CoreV1().Events("").List(c.ctx, metav1.ListOptions{FieldSelector: "reason=" + string(reason)})
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == c.node() || e.InvolvedObject.Namespace == c.name {
			out = append(out, e.Message)
		}
	}
	return out
}

// cordoned reports whether the node is unschedulable.
func (c *testCluster) cordoned() bool {
	n := &corev1.Node{}
	if err := c.env.Client.Get(c.ctx, client.ObjectKey{Name: c.node()}, n); err != nil {
		return false
	}
	return n.Spec.Unschedulable
}
