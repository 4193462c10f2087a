package clusterapi

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// replaceCluster creates a Cluster whose workload cluster is the test API
// server, with a control-plane Machine (without one Cluster API neither
// drains nor deletes a deleted Machine's Node) and a MachineDeployment
// "workers" of n Machines annotated replace; it returns them once Ready.
func replaceCluster(ctx context.Context, ns, cluster string, n int) []clusterv1.Machine {
	GinkgoHelper()
	_, err := capi.CreateCluster(ctx, ns, cluster, env.Config)
	Expect(err).NotTo(HaveOccurred())
	_, err = capi.CreateControlPlaneMachine(ctx, ns, cluster, cluster+"-cp", nil)
	Expect(err).NotTo(HaveOccurred())
	_, err = capi.CreateMachineDeployment(ctx, ns, cluster, "workers", int32(n), map[string]string{v1alpha1.AnnotationStrategy: "replace"})
	Expect(err).NotTo(HaveOccurred())
	return readyMachines(ctx, k8s, ns, "workers", n)
}

var _ = Describe("The replace strategy", func() {
	It("replaces the nodes that need a reboot one Machine after the other", func(ctx SpecContext) {
		const ns, cluster = "replace", "prod"
		before := replaceCluster(ctx, ns, cluster, 3)

		// Every Machine deletion of the MachineDeployment, from a watch.
		mostAtOnce := mostDeleting(ctx, ns, "workers")

		startManager()
		requireReboot(ctx, k8s, before[0].Status.NodeRef.Name)
		requireReboot(ctx, k8s, before[1].Status.NodeRef.Name)

		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(2))
			for _, nc := range cycles {
				g.Expect(nc.Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), "NodeCycle %s: %s", nc.Name, nc.Status.Message)
				g.Expect(nc.Status.ReplacementMachine).NotTo(BeEmpty())
			}
		}).WithTimeout(3 * time.Minute).Should(Succeed())

		after := readyMachines(ctx, k8s, ns, "workers", 3)
		names := func(ms []clusterv1.Machine) []string {
			var out []string
			for _, m := range ms {
				out = append(out, m.Name)
			}
			return out
		}
		Expect(names(after)).NotTo(ContainElements(before[0].Name, before[1].Name), "the old Machines are gone")
		Expect(names(after)).To(ContainElement(before[2].Name), "the Machine that needed nothing stays")
		Expect(mostAtOnce()).To(Equal(1), "Machines being deleted at the same time")

		for _, m := range before[:2] {
			// Events are recorded asynchronously.
			Eventually(func() []string { return eventsOn(ctx, ns, "Machine", m.Name) }).Should(ContainElement(HavePrefix("MachineDeleted")))
			Expect(eventsMissingUID(ctx, ns, "Machine", m.Name, m.UID)).To(BeEmpty(), "Events kubectl describe machine would not show")
		}
		for _, nc := range cyclesIn(ctx, ns) {
			// The Machine is gone: its NodeCycle tells the end.
			Eventually(func() []string { return eventsOn(ctx, ns, "NodeCycle", nc.Name) }).Should(ContainElement(HavePrefix("MaintenanceCompleted")))
		}
		for _, nc := range cyclesIn(ctx, ns) {
			Expect(nc.Spec.ClusterName).To(Equal(cluster))
			Expect(names(after)).To(ContainElement(nc.Status.ReplacementMachine))
			Expect(nc.Status.PhaseDurations).NotTo(BeEmpty())
		}
	})

	It("honours the Machine's pre-drain hook and fails at the replace timeout with what it waited for", func(ctx SpecContext) {
		const ns, cluster = "replace-hook", "slow"
		ms := replaceCluster(ctx, ns, cluster, 2)
		hook := clusterv1.PreDrainDeleteHookAnnotationPrefix + "/backup"
		Expect(setMachineAnnotations(ctx, &ms[0], map[string]string{hook: "backup-operator"})).To(Succeed())

		startManager("--replace-timeout=4s", "--gone-machine-history=3s")
		requireReboot(ctx, k8s, ms[0].Status.NodeRef.Name)
		var failed v1alpha1.NodeCycle
		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(1))
			g.Expect(cycles[0].Status.Phase).To(Equal(v1alpha1.PhaseWaitingForReplacement))
		}).Should(Succeed())
		requireReboot(ctx, k8s, ms[1].Status.NodeRef.Name)

		Eventually(func(g Gomega) {
			for _, nc := range cyclesIn(ctx, ns) {
				if nc.Spec.MachineName == ms[0].Name {
					failed = nc
				}
			}
			g.Expect(failed.Status.Phase).To(Equal(v1alpha1.PhaseFailed))
		}).Should(Succeed())
		Expect(failed.Status.Reason).To(Equal(v1alpha1.ReasonReplaceTimeout))
		Expect(failed.Status.Message).To(ContainSubstring("Replacement not done within 4s: Waiting for Cluster API to drain and delete Machine " + ms[0].Name))
		m := &clusterv1.Machine{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&ms[0]), m)).To(Succeed(), "the hook holds the Machine")
		Expect(m.DeletionTimestamp.IsZero()).To(BeFalse())

		By("the other node waits while the held Machine's node is still cordoned by nodecycle")
		Consistently(func(g Gomega) {
			for _, nc := range cyclesIn(ctx, ns) {
				if nc.Spec.MachineName == ms[1].Name {
					g.Expect(nc.Status.Phase).To(Equal(v1alpha1.PhasePending))
				}
			}
		}).WithTimeout(2 * time.Second).Should(Succeed())

		By("once the hook is removed, Cluster API deletes the Machine and the next node is replaced")
		patch := client.MergeFrom(m.DeepCopy())
		delete(m.Annotations, hook)
		Expect(k8s.Patch(ctx, m, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			for _, nc := range cyclesIn(ctx, ns) {
				if nc.Spec.MachineName == ms[1].Name {
					g.Expect(nc.Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), nc.Status.Message)
				}
			}
		}).WithTimeout(2 * time.Minute).Should(Succeed())

		By("the NodeCycles of the replaced Machines go after --gone-machine-history")
		Eventually(func() []v1alpha1.NodeCycle { return cyclesIn(ctx, ns) }).WithTimeout(30 * time.Second).Should(BeEmpty())
	})
})
