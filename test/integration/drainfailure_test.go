package integration

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

var _ = Describe("Undrainable nodes", func() {
	It("with --drain-failure=skip-node, reboots the other five of six nodes past one a PDB never lets drain, and names it", func() {
		c := newCluster("undrainable", 6)
		blocked := c.node(3)
		c.deployOn(map[string]string{corev1.LabelHostname: blocked}, "db", 1, 0)
		for _, a := range c.agents {
			a.requireReboot()
		}
		stop, metrics := startManagerWithMetrics(c.managerFlags("--drain-timeout=3s", "--reboot-timeout=2m",
			"--drain-failure=skip-node", "--retry-backoff=1s", "--max-retry-backoff=1s")...)
		defer stop()

		want := map[string][]v1alpha1.Phase{}
		for i := 1; i <= 6; i++ {
			want[c.node(i)] = []v1alpha1.Phase{v1alpha1.PhaseSucceeded}
		}
		want[blocked] = []v1alpha1.Phase{v1alpha1.PhaseFailed}
		Eventually(c.phases, 4*time.Minute).Should(Equal(want))
		By("the blocked node is named, left alone on its boot and given back")
		Consistently(c.phases, 5*time.Second).Should(Equal(want), "no retry of the skipped node (the backoff is 1s)")
		nc := c.cycleOf(blocked)
		Expect(nc.Status.Reason).To(Equal(v1alpha1.ReasonDrainTimeout))
		Expect(nc.Status.Message).To(ContainSubstring("PDB undrainable/db"))
		Expect(nc.Status.Message).To(ContainSubstring("SkipNode"))
		Expect(c.getNode(blocked).Status.Conditions).To(ContainElement(And(
			HaveField("Type", corev1.NodeConditionType(v1alpha1.ConditionMaintenanceInProgress)),
			HaveField("Status", corev1.ConditionFalse),
			HaveField("Reason", string(v1alpha1.ReasonNodeSkipped)),
			HaveField("Message", ContainSubstring(nc.Name)))))
		Expect(eventMessages(blocked, string(v1alpha1.ReasonNodeSkipped))).To(HaveLen(1))
		Expect(metricValue(metrics, "nodecycle_nodes_skipped", map[string]string{"cluster": ""})).To(Equal(1.0))
		Expect(c.agents[blocked].reboots()).To(Equal(0))
		c.expectOneAtATime()
		c.expectNothingCordoned()
		for i := 1; i <= 6; i++ {
			if n := c.node(i); n != blocked {
				Expect(c.kubelet.Reboots(n)).To(Equal(1), "reboots of %s", n)
			}
		}

		By("deleting the failed NodeCycle allows one more attempt")
		Expect(env.Client.Delete(c.ctx, &nc)).To(Succeed())
		Eventually(func() []string { return eventReasons(blocked) }).Should(ContainElement(string(v1alpha1.ReasonNodeSkipLifted)))
		Eventually(c.phases).Should(HaveKeyWithValue(blocked, []v1alpha1.Phase{v1alpha1.PhaseFailed}))
		Expect(c.cycleOf(blocked).UID).NotTo(Equal(nc.UID), "a new NodeCycle of the same name")
	})
})
