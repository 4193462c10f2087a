package integration

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

var _ = Describe("Manager", func() {
	It("refuses --cluster-api in a cluster without Cluster API, naming what is missing", func() {
		stop, _, err := framework.StartManager(env.Config, GinkgoWriter, "--cluster-api")
		if stop != nil {
			_ = stop()
		}
		Expect(err).To(MatchError(ContainSubstring("--cluster-api: this cluster does not serve Cluster API's Cluster (cluster.x-k8s.io/v1beta2)")))
	})

	It("with a topology key, rolls three zones in parallel, never two nodes of one zone at once", func() {
		c := newCluster("zones", 9)
		for i := 1; i <= 9; i++ {
			zone := fmt.Sprintf(`{"metadata":{"labels":{%q:"zone-%d"}}}`, corev1.LabelTopologyZone, (i-1)%3)
			_, err := env.Clientset.CoreV1().Nodes().Patch(c.ctx, c.node(i), types.MergePatchType, []byte(zone), metav1.PatchOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		for _, a := range c.agents {
			a.requireReboot()
		}
		stop := startManager(c.managerFlags("--max-concurrent=3", "--topology-key="+corev1.LabelTopologyZone)...)
		defer stop()
		want := map[string][]v1alpha1.Phase{}
		for i := 1; i <= 9; i++ {
			want[c.node(i)] = []v1alpha1.Phase{v1alpha1.PhaseSucceeded}
		}
		Eventually(c.phases, 4*time.Minute).Should(Equal(want))
		c.inv.mu.Lock()
		maxPerZone, maxCordoned := c.inv.maxPerZone, c.inv.maxCordoned
		c.inv.mu.Unlock()
		Expect(maxPerZone).To(Equal(1), "never two nodes of one zone cordoned at once")
		Expect(maxCordoned).To(Equal(3), "the three zones in parallel")
		for i := 1; i <= 9; i++ {
			Expect(c.kubelet.Reboots(c.node(i))).To(Equal(1))
		}
	})

	It("drains and reboots every node that needs it exactly once, one node at a time", func() {
		c := newCluster("roll", 3)
		c.deploy("web", 4, 1)
		// A node that opted out keeps its sentinel and is never touched.
		Expect(sim.CreateNode(c.ctx, env.Clientset, "roll-excluded", map[string]string{runLabel: c.name, v1alpha1.LabelExclude: "true"})).To(Succeed())
		excluded := newTestAgent("roll-excluded")
		excluded.start()
		c.agents["roll-excluded"] = excluded
		for _, a := range c.agents {
			a.requireReboot()
		}
		stop, metrics := startManagerWithMetrics(c.managerFlags("--drain-timeout=2m", "--reboot-timeout=2m")...)
		defer stop()

		Eventually(c.phases, 3*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{
			c.node(1): {v1alpha1.PhaseSucceeded}, c.node(2): {v1alpha1.PhaseSucceeded}, c.node(3): {v1alpha1.PhaseSucceeded},
		}))
		Consistently(c.phases, 2*time.Second).Should(HaveLen(3), "no second round")
		c.expectOneAtATime()
		c.expectNothingCordoned()
		for i := 1; i <= 3; i++ {
			n := c.node(i)
			Expect(c.agents[n].reboots()).To(Equal(1), "reboot commands run on %s", n)
			Expect(c.kubelet.Reboots(n)).To(Equal(1), "reboots of %s", n)
			nc := c.cycleOf(n)
			Expect(nc.Status.BootIDAfter).NotTo(BeEmpty())
			Expect(nc.Status.BootIDAfter).NotTo(Equal(nc.Status.BootIDBefore))
			Expect(c.getNode(n).Status.NodeInfo.BootID).To(Equal(nc.Status.BootIDAfter))
			Eventually(func() []string { return eventReasons(n) }).Should(ContainElements("NodeCycleCreated", "MaintenanceStarted", "Cordoned", "Drained",
				"RebootRequested", "RebootVerified", "Uncordoned", string(v1alpha1.ReasonMaintenanceCompleted)))
			node := c.getNode(n)
			Expect(node.Status.Conditions).To(ContainElement(And(
				HaveField("Type", corev1.NodeConditionType(v1alpha1.ConditionMaintenanceInProgress)),
				HaveField("Status", corev1.ConditionFalse),
				HaveField("Reason", string(v1alpha1.ReasonMaintenanceCompleted)))))
		}
		Expect(excluded.reboots()).To(Equal(0))
		Expect(c.getNode("roll-excluded").Spec.Unschedulable).To(BeFalse())
		_, requested := c.inv.snapshot()
		Expect(requested).NotTo(HaveKey("roll-excluded"))

		By("the metrics count what happened")
		Expect(metricValue(metrics, "nodecycle_operations_total", map[string]string{"strategy": "reboot", "result": "Succeeded"})).To(Equal(3.0))
		families, err := metrics.Gather()
		Expect(err).NotTo(HaveOccurred())
		names := map[string]bool{}
		for _, f := range families {
			names[f.GetName()] = true
		}
		Expect(names).To(HaveKey("nodecycle_operation_duration_seconds"))
		Expect(names).To(HaveKey("nodecycle_drain_duration_seconds"))
		Expect(names).To(HaveKey("nodecycle_nodes_reboot_required"))
		Expect(names).To(HaveKey("nodecycle_nodes_quarantined"))

		By("the workload is whole again")
		Eventually(func(g Gomega) {
			dep := &appsv1.Deployment{}
			g.Expect(env.Client.Get(c.ctx, client.ObjectKey{Namespace: c.name, Name: "web"}, dep)).To(Succeed())
			g.Expect(dep.Status.AvailableReplicas).To(Equal(int32(4)))
		}).Should(Succeed())
	})

	It("fails a drain that a PDB blocks, names the PDB, uncordons the node and never requests a reboot", func() {
		c := newCluster("blocked", 1)
		c.deploy("db", 1, 0)
		c.agents[c.node(1)].requireReboot()
		stop := startManager(c.managerFlags("--drain-timeout=3s", "--retry-backoff=1h")...)
		defer stop()

		Eventually(c.phases).Should(Equal(map[string][]v1alpha1.Phase{c.node(1): {v1alpha1.PhaseFailed}}))
		nc := c.cycleOf(c.node(1))
		Expect(nc.Status.Reason).To(Equal(v1alpha1.ReasonDrainTimeout))
		Expect(nc.Status.Message).To(ContainSubstring("PDB blocked/db"))
		Expect(nc.Status.Message).To(ContainSubstring("within 3s"))
		c.expectNothingCordoned()
		_, requested := c.inv.snapshot()
		Expect(requested).To(BeEmpty())
		Expect(c.agents[c.node(1)].reboots()).To(Equal(0))
		Eventually(func() []string { return eventReasons(c.node(1)) }).Should(ContainElements("DrainTimeout", string(v1alpha1.ReasonMaintenanceFailed), "Uncordoned"))
		node := c.getNode(c.node(1))
		Expect(node.Status.Conditions).To(ContainElement(And(
			HaveField("Type", corev1.NodeConditionType(v1alpha1.ConditionMaintenanceInProgress)),
			HaveField("Reason", string(v1alpha1.ReasonMaintenanceFailed)),
			HaveField("Message", ContainSubstring("PDB blocked/db")))))
		Consistently(c.phases, 2*time.Second).Should(HaveLen(1), "no retry before the backoff")
	})

	It("retries a failed node after the backoff, as the next attempt of the same boot", func() {
		c := newCluster("retry", 1)
		c.deploy("db", 1, 0)
		c.agents[c.node(1)].requireReboot()
		stop := startManager(c.managerFlags("--drain-timeout=2s", "--retry-backoff=2s", "--max-retry-backoff=2s")...)
		defer stop()

		Eventually(func() []int32 {
			var attempts []int32
			for _, nc := range nodeCycles(c.name) {
				if nc.Status.Phase == v1alpha1.PhaseFailed {
					attempts = append(attempts, nc.Spec.Attempt)
				}
			}
			return attempts
		}).Should(ContainElements(int32(1), int32(2)))
		for _, nc := range nodeCycles(c.name) {
			Expect(nc.Spec.BootID).To(Equal(c.getNode(c.node(1)).Status.NodeInfo.BootID))
		}
		var done1, start2 time.Time
		for _, nc := range nodeCycles(c.name) {
			switch nc.Spec.Attempt {
			case 1:
				done1 = nc.Status.CompletionTime.Time
			case 2:
				start2 = nc.CreationTimestamp.Time
			}
		}
		Expect(start2).To(BeTemporally(">=", done1.Add(time.Second)), "attempt 2 waited for the backoff")
	})

	// H6: a node whose agent took the reboot request but that has not gone
	// down by the reboot timeout may still reboot (a slow shutdown, a long
	// POST): pods let back onto it would go down with it, and a second node
	// drained meanwhile would make two at once.
	It("fails a node that acknowledged the reboot but never went down, keeping it cordoned with its slot until the request is given up", func() {
		c := newCluster("stuck", 2, "stuck-1")
		for _, a := range c.agents {
			a.requireReboot()
		}
		stop := startManager(c.managerFlags("--reboot-timeout=3s", "--retry-backoff=1h")...)
		defer stop()

		Eventually(func() []v1alpha1.Phase { return c.phases()[c.node(1)] }).Should(Equal([]v1alpha1.Phase{v1alpha1.PhaseFailed}))
		nc := c.cycleOf(c.node(1))
		Expect(nc.Status.Reason).To(Equal(v1alpha1.ReasonRebootTimeout))
		Expect(nc.Status.Message).To(ContainSubstring("did not come back within 3s"))
		Expect(nc.Status.Message).To(ContainSubstring(fmt.Sprintf("boot ID still %q", nc.Status.BootIDBefore)))
		Expect(nc.Status.Message).To(ContainSubstring("the node stays cordoned, and keeps its cluster's slot, until it runs a new boot"))
		Consistently(func(g Gomega) {
			n := c.getNode(c.node(1))
			g.Expect(n.Spec.Unschedulable).To(BeTrue(), "uncordoned while its reboot may still come")
			g.Expect(n.Annotations).To(HaveKey(v1alpha1.AnnotationRebootRequest))
		}).WithTimeout(3 * time.Second).Should(Succeed())

		By("the operator gives the reboot up: the cordon is lifted and the next node goes")
		Expect(env.Client.Patch(c.ctx, c.getNode(c.node(1)), client.RawPatch(types.MergePatchType,
			nodes.AnnotationsPatch(map[string]*string{v1alpha1.AnnotationRebootRequest: nil})))).To(Succeed())
		Eventually(c.phases).Should(Equal(map[string][]v1alpha1.Phase{
			c.node(1): {v1alpha1.PhaseFailed}, c.node(2): {v1alpha1.PhaseSucceeded},
		}))
		c.expectOneAtATime()
		Eventually(func() bool { return c.getNode(c.node(1)).Spec.Unschedulable }).Should(BeFalse())
		c.expectNothingCordoned()
	})

	It("fails a replace ladder outside Cluster API before touching the node", func() {
		c := newCluster("replace-local", 1)
		Expect(env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "replace", Namespace: c.name},
			Spec:       v1alpha1.NodeCyclePolicySpec{Strategies: []v1alpha1.Strategy{v1alpha1.StrategyReboot, v1alpha1.StrategyReplace}},
		})).To(Succeed())
		c.agents[c.node(1)].requireReboot()
		stop := startManager(c.managerFlags("--retry-backoff=1h")...)
		defer stop()

		Eventually(c.phases).Should(Equal(map[string][]v1alpha1.Phase{c.node(1): {v1alpha1.PhaseFailed}}))
		nc := c.cycleOf(c.node(1))
		Expect(nc.Status.Reason).To(Equal(v1alpha1.ReasonNotAClusterAPINode))
		Expect(nc.Status.StartTime).To(BeNil(), "no maintenance slot was taken")
		Expect(c.agents[c.node(1)].reboots()).To(Equal(0))
		maxCordoned, _ := c.inv.snapshot()
		Expect(maxCordoned).To(Equal(0))
	})

	It("requests an in-place reboot only while a Ready agent pod runs on the node, waiting for one before the cordon", func() {
		c := newCluster("agentpod", 2)
		for _, a := range c.agents {
			a.requireReboot()
		}
		// Node 1 has a Ready agent pod (the simulated kubelet runs it); node 2
		// has none. Like the real one it belongs to a DaemonSet, so the drain
		// leaves it running.
		createAgentPod(c, 1)
		stop := startManager(c.managerFlags("--agent-pod-selector=app=nodecycle-agent", "--retry-backoff=1h")...)
		defer stop()

		Eventually(c.phases).Should(Equal(map[string][]v1alpha1.Phase{
			c.node(1): {v1alpha1.PhaseSucceeded}, c.node(2): {v1alpha1.PhasePending},
		}))
		Eventually(func() string { return c.messageOf(c.node(2)) }).Should(Equal("Waiting for a Ready nodecycle agent pod (app=nodecycle-agent) on the node"))
		Consistently(func() bool { return c.getNode(c.node(2)).Spec.Unschedulable }, 2*time.Second).Should(BeFalse(), "a node without an agent is not cordoned")
		_, requested := c.inv.snapshot()
		Expect(requested).NotTo(HaveKey(c.node(2)), "no reboot was requested from a node without an agent")
		Expect(c.agents[c.node(2)].reboots()).To(Equal(0))

		By("its agent coming back")
		createAgentPod(c, 2)
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{
			c.node(1): {v1alpha1.PhaseSucceeded}, c.node(2): {v1alpha1.PhaseSucceeded},
		}))
		c.expectNothingCordoned()
	})

	It("admits an admin's cordon and leaves it in place", func() {
		c := newCluster("admin", 1)
		Expect(env.Client.Patch(c.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: c.node(1)}},
			client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"unschedulable":true}}`)))).To(Succeed())
		c.agents[c.node(1)].requireReboot()
		stop := startManager(c.managerFlags()...)
		defer stop()
		Eventually(c.phases).Should(Equal(map[string][]v1alpha1.Phase{c.node(1): {v1alpha1.PhaseSucceeded}}))
		Expect(c.getNode(c.node(1)).Spec.Unschedulable).To(BeTrue())
		Expect(c.cycleOf(c.node(1)).Status.Message).To(ContainSubstring("stays cordoned"))
	})

	DescribeTable("finishes the operation of a manager stopped mid-way, one node at a time",
		func(stopIn v1alpha1.Phase) {
			c := newCluster("restart-"+map[v1alpha1.Phase]string{v1alpha1.PhaseDraining: "drain", v1alpha1.PhaseWaitingForNodeReady: "reboot"}[stopIn], 2)
			c.kubelet.DownTime = 3 * time.Second
			c.deploy("web", 2, 0) // blocks the drain until the PDB is relaxed
			for _, a := range c.agents {
				a.requireReboot()
			}
			if stopIn == v1alpha1.PhaseWaitingForNodeReady {
				relaxPDB(c, "web")
			}
			stop := startManager(c.managerFlags("--leader-elect=true", "--drain-timeout=2m")...)
			Eventually(func() []v1alpha1.Phase {
				var all []v1alpha1.Phase
				for _, p := range c.phases() {
					all = append(all, p...)
				}
				return all
			}).Should(ContainElement(stopIn))
			stop()

			if stopIn == v1alpha1.PhaseDraining {
				cordoned := 0
				for n := range c.agents {
					if c.getNode(n).Spec.Unschedulable {
						cordoned++
					}
				}
				Expect(cordoned).To(Equal(1), "the stopped manager had cordoned one node")
				relaxPDB(c, "web")
			}
			stop = startManager(c.managerFlags("--leader-elect=true", "--drain-timeout=2m")...)
			defer stop()
			Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{
				c.node(1): {v1alpha1.PhaseSucceeded}, c.node(2): {v1alpha1.PhaseSucceeded},
			}))
			c.expectOneAtATime()
			c.expectNothingCordoned()
			for n, a := range c.agents {
				Expect(a.reboots()).To(Equal(1), "reboot commands run on %s", n)
				Expect(c.kubelet.Reboots(n)).To(Equal(1), "reboots of %s", n)
			}
		},
		Entry("after the cordon", v1alpha1.PhaseDraining),
		Entry("after the reboot request", v1alpha1.PhaseWaitingForNodeReady),
	)
})

// createAgentPod runs an agent pod on node i of c (the simulated kubelet
// makes it Ready). Like the real one it belongs to a DaemonSet, so the
// drain leaves it running.
func createAgentPod(c *cluster, i int) {
	Expect(env.Client.Create(c.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("agent-%d", i), Namespace: c.name, Labels: map[string]string{"app": "nodecycle-agent"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "nodecycle-agent", UID: "0d7f3a8e-1111-4222-8333-944455556666", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: c.node(i), TerminationGracePeriodSeconds: ptr.To(int64(0)),
			Containers: []corev1.Container{{Name: "agent", Image: "nodecycle"}}},
	})).To(Succeed())
}
