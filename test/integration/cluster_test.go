package integration

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

const runLabel = "nodecycle.test/run"

// cluster is one test's slice of the shared API server: its nodes (labelled
// with the run), their agents and kubelet, its namespace for NodeCycles and
// workloads, and the flags its manager runs with.
type cluster struct {
	name    string
	ctx     context.Context
	cancel  context.CancelFunc
	agents  map[string]*testAgent
	kubelet *sim.Kubelet
	inv     *invariant
}

func newCluster(name string, nodeCount int, broken ...string) *cluster {
	GinkgoHelper()
	c := &cluster{name: name, agents: map[string]*testAgent{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	DeferCleanup(func() {
		for _, a := range c.agents {
			a.stop()
		}
		c.cancel()
	})
	createNamespace(name)
	sel := labels.SelectorFromSet(labels.Set{runLabel: name})
	c.kubelet = &sim.Kubelet{Client: env.Clientset, Selector: sel, DownTime: time.Second, Broken: map[string]bool{}, InFlight: &sim.InFlight{}}
	for _, b := range broken {
		c.kubelet.Broken[b] = true
	}
	go c.kubelet.Run(c.ctx)
	for i := 1; i <= nodeCount; i++ {
		n := c.node(i)
		Expect(sim.CreateNode(c.ctx, env.Clientset, n, map[string]string{runLabel: name})).To(Succeed())
		a := newTestAgent(n)
		a.namespace = name
		a.start()
		c.agents[n] = a
	}
	c.inv = watchInvariant(c.ctx, sel)
	return c
}

func (c *cluster) node(i int) string { return fmt.Sprintf("%s-%d", c.name, i) }

func (c *cluster) managerFlags(extra ...string) []string {
	// The test agents run in the test process, not as pods.
	return append([]string{"--namespace=" + c.name, "--node-selector=" + runLabel + "=" + c.name, "--agent-pod-selector="}, extra...)
}

// deploy runs a Deployment spread over the nodes with a PDB allowing
// maxUnavailable disruptions, and waits until every replica is available.
func (c *cluster) deploy(name string, replicas int32, maxUnavailable int) {
	GinkgoHelper()
	c.deployOn(map[string]string{runLabel: c.name}, name, replicas, maxUnavailable)
}

// deployOn is deploy on the nodes nodeSelector selects.
func (c *cluster) deployOn(nodeSelector map[string]string, name string, replicas int32, maxUnavailable int) {
	GinkgoHelper()
	podLabels := map[string]string{"app": name}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					NodeSelector: nodeSelector,
					// Nodes registered through the API carry the not-ready
					// taint until a node lifecycle controller lifts it.
					Tolerations: []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.ScheduleAnyway,
						LabelSelector: &metav1.LabelSelector{MatchLabels: podLabels},
					}},
					TerminationGracePeriodSeconds: ptr.To(int64(1)),
					Containers:                    []corev1.Container{{Name: "web", Image: "nginx:1.27"}},
				},
			},
		},
	}
	Expect(env.Client.Create(c.ctx, dep)).To(Succeed())
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.name},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(int32(maxUnavailable))),
			Selector:       &metav1.LabelSelector{MatchLabels: podLabels},
		},
	}
	Expect(env.Client.Create(c.ctx, pdb)).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(c.ctx, client.ObjectKeyFromObject(dep), dep)).To(Succeed())
		g.Expect(dep.Status.AvailableReplicas).To(Equal(replicas))
		g.Expect(env.Client.Get(c.ctx, client.ObjectKeyFromObject(pdb), pdb)).To(Succeed())
		g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
		g.Expect(pdb.Status.DisruptionsAllowed).To(Equal(int32(maxUnavailable)))
	}).Should(Succeed())
}

// phases maps node name to the phases of its NodeCycles.
func (c *cluster) phases() map[string][]v1alpha1.Phase {
	out := map[string][]v1alpha1.Phase{}
	for _, nc := range nodeCycles(c.name) {
		out[nc.Spec.NodeName] = append(out[nc.Spec.NodeName], nc.Status.Phase)
	}
	return out
}

func (c *cluster) cycleOf(node string) v1alpha1.NodeCycle {
	GinkgoHelper()
	for _, nc := range nodeCycles(c.name) {
		if nc.Spec.NodeName == node {
			return nc
		}
	}
	Fail("no NodeCycle for node " + node)
	return v1alpha1.NodeCycle{}
}

func (c *cluster) getNode(name string) *corev1.Node {
	GinkgoHelper()
	n := &corev1.Node{}
	Expect(env.Client.Get(c.ctx, client.ObjectKey{Name: name}, n)).To(Succeed())
	return n
}

// eventReasons lists the reasons of the Events about a node.
func eventReasons(node string) []string {
	GinkgoHelper()
	var reasons []string
	for _, e := range nodeEvents(node, "") {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}

// eventMessages are the messages of the node's Events of reason.
func eventMessages(node, reason string) []string {
	GinkgoHelper()
	var out []string
	for _, e := range nodeEvents(node, reason) {
		out = append(out, e.Message)
	}
	return out
}

// nodeEvents lists the Events about the node (of reason, unless "").
func nodeEvents(node, reason string) []corev1.Event {
	GinkgoHelper()
	sel := fields.Set{"involvedObject.kind": "Node", "involvedObject.name": node}
	if reason != "" {
		sel["reason"] = reason
	}
	list, err := env.Clientset.CoreV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: sel.String()})
	Expect(err).NotTo(HaveOccurred())
	return list.Items
}

// expectOneAtATime checks "one node at a time" from two signals the
// manager's own bookkeeping does not write: the Nodes' spec.unschedulable
// from a watch that stayed open, and the kubelets' record of reboots in
// progress. It returns the most reboots in progress at once and how many
// there were.
func (c *cluster) expectOneAtATime() (mostRebooting, reboots int) {
	GinkgoHelper()
	c.inv.expectAlive()
	maxCordoned, _ := c.inv.snapshot()
	Expect(maxCordoned).To(BeNumerically("<=", 1), "nodes cordoned at the same time (spec.unschedulable, from a Node watch)")
	mostRebooting, reboots = c.kubelet.InFlight.Max(nil)
	Expect(mostRebooting).To(BeNumerically("<=", 1), "nodes rebooting at the same time (the kubelets' own record)")
	return mostRebooting, reboots
}

func (c *cluster) expectNothingCordoned() {
	GinkgoHelper()
	for n := range c.agents {
		node := c.getNode(n)
		Expect(node.Spec.Unschedulable).To(BeFalse(), "node %s left cordoned", n)
		Expect(node.Annotations).NotTo(HaveKey(v1alpha1.AnnotationCordonedBy))
		Expect(node.Annotations).NotTo(HaveKey(v1alpha1.AnnotationRebootRequest))
	}
}

// counterValue reads one series of a counter from a registry.
func metricValue(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	GinkgoHelper()
	families, err := reg.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := len(m.GetLabel()) == len(labels)
			for _, l := range m.GetLabel() {
				match = match && labels[l.GetName()] == l.GetValue()
			}
			if match {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	Fail(fmt.Sprintf("no series %s%v", name, labels))
	return 0
}

func relaxPDB(c *cluster, name string) {
	GinkgoHelper()
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.name}}
	Expect(env.Client.Patch(c.ctx, pdb, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"maxUnavailable":1}}`)))).To(Succeed())
}
