package clusterapi

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

var _ = Describe("In-place reboot of a Cluster API node", func() {
	It("keeps a MachineHealthCheck off the Machine while it reboots, also across a manager restart", func(ctx SpecContext) {
		const ns, cluster = "reboot", "edge"
		ms := clusterWithPool(ctx, ns, cluster, "pool", 2, "reboot")
		target, other := ms[0], ms[1]
		nodeName := target.Status.NodeRef.Name
		kubelet := startKubelet(env.Config, 3*time.Second)
		// Cluster API's own MachineHealthCheck: a node NotReady for 1s is
		// unhealthy, and its Machine would be replaced. It is also
		// misconfigured as users do: a node in maintenance (nodecycle's
		// condition, Kubernetes' lifecycle ones) for 1s is "unhealthy" too.
		mhc := sim.MachineHealthCheck(ns, cluster, "pool", "")
		for _, t := range []corev1.NodeConditionType{v1alpha1.ConditionMaintenanceInProgress, v1alpha1.ConditionDrainInProgress, v1alpha1.ConditionDrained} {
			mhc.Spec.Checks.UnhealthyNodeConditions = append(mhc.Spec.Checks.UnhealthyNodeConditions,
				clusterv1.UnhealthyNodeCondition{Type: t, Status: corev1.ConditionTrue, TimeoutSeconds: ptr.To(int32(1))})
		}
		Expect(k8s.Create(ctx, mhc)).To(Succeed())
		machineHealthy := func(name string) func(g Gomega) {
			return func(g Gomega) {
				m := &clusterv1.Machine{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m)).To(Succeed())
				g.Expect(m.DeletionTimestamp.IsZero()).To(BeTrue(), "Machine %s deleted", name)
				c := meta.FindStatusCondition(m.Status.Conditions, clusterv1.MachineHealthCheckSucceededCondition)
				g.Expect(c).NotTo(BeNil(), "the MachineHealthCheck has not looked at Machine %s", name)
				g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "Machine %s: %s", name, c.Message)
			}
		}
		Eventually(machineHealthy(target.Name)).Should(Succeed(), "the MachineHealthCheck runs")

		// A skip-remediation that nodecycle did not set stays; one it set for
		// a NodeCycle that no longer exists (a crash) is lifted.
		Expect(setMachineAnnotations(ctx, &other, map[string]string{
			clusterv1.MachineSkipRemediationAnnotation: "", v1alpha1.AnnotationSkipRemediationBy: ns + "/gone-1",
		})).To(Succeed())

		stop := startManager()
		requireReboot(ctx, k8s, nodeName)

		By("skip-remediation is on the Machine during the reboot")
		var nc v1alpha1.NodeCycle
		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(1))
			nc = cycles[0]
			g.Expect(nc.Status.Phase).To(Equal(v1alpha1.PhaseWaitingForNodeReady))
		}).Should(Succeed())
		m := &clusterv1.Machine{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&target), m)).To(Succeed())
		Expect(m.Annotations).To(HaveKeyWithValue(clusterv1.MachineSkipRemediationAnnotation, ""))
		Expect(m.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationSkipRemediationBy, ns+"/"+nc.Name))
		Expect(nc.Spec.MachineName).To(Equal(target.Name))

		By("the node is down, and in maintenance, for longer than the MachineHealthCheck allows, and its Machine stays")
		Eventually(func(g Gomega) {
			node := &corev1.Node{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: nodeName}, node)).To(Succeed())
			g.Expect(nodes.IsConditionTrue(node, v1alpha1.ConditionMaintenanceInProgress)).To(BeTrue())
			g.Expect(nodes.IsConditionTrue(node, v1alpha1.ConditionDrained)).To(BeTrue())
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			rebooting := &clusterv1.Machine{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&target), rebooting)).To(Succeed())
			g.Expect(rebooting.DeletionTimestamp.IsZero()).To(BeTrue())
			g.Expect(meta.FindStatusCondition(rebooting.Status.Conditions, clusterv1.MachineOwnerRemediatedCondition)).To(BeNil())
		}).WithTimeout(2 * time.Second).Should(Succeed())

		By("the manager stops in the middle of the reboot; the annotation stays meanwhile")
		stop()
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&target), m)).To(Succeed())
		Expect(m.Annotations).To(HaveKey(clusterv1.MachineSkipRemediationAnnotation))

		By("a new manager finishes the NodeCycle and lifts skip-remediation")
		startManager()
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&nc), &nc)).To(Succeed())
			g.Expect(nc.Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), nc.Status.Message)
		}).Should(Succeed())
		Expect(kubelet.Reboots(nodeName)).To(Equal(1))
		Expect(nc.Status.BootIDAfter).NotTo(Equal(nc.Status.BootIDBefore))
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&target), m)).To(Succeed())
			g.Expect(m.Annotations).NotTo(HaveKey(clusterv1.MachineSkipRemediationAnnotation))
			g.Expect(m.Annotations).NotTo(HaveKey(v1alpha1.AnnotationSkipRemediationBy))
			node := &corev1.Node{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: nodeName}, node)).To(Succeed())
			g.Expect(node.Spec.Unschedulable).To(BeFalse())
		}).Should(Succeed())

		By("the leftover of a vanished NodeCycle is lifted from the other Machine")
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&other), m)).To(Succeed())
			g.Expect(m.Annotations).NotTo(HaveKey(clusterv1.MachineSkipRemediationAnnotation))
		}).Should(Succeed())

		By("someone else's skip-remediation stays")
		Expect(setMachineAnnotations(ctx, &other, map[string]string{clusterv1.MachineSkipRemediationAnnotation: "ops"})).To(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&other), m)).To(Succeed())
			g.Expect(m.Annotations).To(HaveKeyWithValue(clusterv1.MachineSkipRemediationAnnotation, "ops"))
		}).WithTimeout(2 * time.Second).Should(Succeed())
		Eventually(machineHealthy(target.Name)).Should(Succeed(), "the rebooted Machine is healthy again")

		By("without nodecycle's skip-remediation the same outage is remediated: the MachineHealthCheck is real")
		Expect(sim.SetNodeStatus(ctx, kubelet.Client, nodeName, "", false)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&target), m)).To(Succeed())
			c := meta.FindStatusCondition(m.Status.Conditions, clusterv1.MachineHealthCheckSucceededCondition)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		}).Should(Succeed())
	})
})

func setMachineAnnotations(ctx SpecContext, m *clusterv1.Machine, set map[string]string) error {
	latest := &clusterv1.Machine{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(m), latest); err != nil {
		return err
	}
	patch := client.MergeFrom(latest.DeepCopy())
	if latest.Annotations == nil {
		latest.Annotations = map[string]string{}
	}
	for k, v := range set {
		latest.Annotations[k] = v
	}
	return k8s.Patch(ctx, latest, patch)
}
