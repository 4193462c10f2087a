package clusterapi

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/peers"
)

// power-cycle on a Machine's node, end to end: the MachineDeployment opts
// in with power-cycle, the policy in the Cluster's namespace names the BMC
// (ipmi_sim) and credentials the manager's namespace lends to it; the
// Machine is kept off MachineHealthChecks, and clusterctl move waits,
// while its machine is off.
var _ = Describe("Power-cycle of a workload node", func() {
	It("power-cycles the Machine's node through its BMC, with skip-remediation held meanwhile", func(ctx SpecContext) {
		bmc, err := peers.StartBMC()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(bmc.Stop)

		const ns, name = "power", "metal"
		m := clusterWithPool(ctx, ns, name, "pool", 1, "power-cycle")[0]
		node := m.Status.NodeRef.Name

		bmcPolicy(ctx, ns, node, bmc)

		startManager("--reboot-timeout=1m", "--retry-backoff=1h")
		requireReboot(ctx, k8s, node)

		By("skip-remediation is on the Machine while its machine is off")
		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(1))
			g.Expect(cycles[0].Status.Phase).To(BeElementOf(v1alpha1.PhasePoweringOff, v1alpha1.PhasePoweringOn, v1alpha1.PhaseWaitingForNodeReady))
			held := &clusterv1.Machine{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&m), held)).To(Succeed())
			g.Expect(held.Annotations).To(HaveKey(clusterv1.MachineSkipRemediationAnnotation))
			g.Expect(held.Annotations).To(HaveKey(v1alpha1.AnnotationBlockMove), "clusterctl move waits")
		}).Should(Succeed())

		By("the node comes back on a new boot; the Machine is released")
		var nc v1alpha1.NodeCycle
		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(1))
			nc = cycles[0]
			g.Expect(nc.Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), nc.Status.Message)
		}).WithTimeout(2 * time.Minute).Should(Succeed())
		Expect(nc.Spec.MachineName).To(Equal(m.Name))
		Expect(nc.Spec.Policy).To(Equal("bmc"))
		Expect(nc.Status.Strategy).To(Equal(v1alpha1.StrategyPowerCycle))
		Expect(nc.Status.BootIDAfter).NotTo(Equal(nc.Status.BootIDBefore))
		Eventually(func(g Gomega) {
			released := &clusterv1.Machine{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&m), released)).To(Succeed())
			g.Expect(released.Annotations).NotTo(HaveKey(clusterv1.MachineSkipRemediationAnnotation))
			g.Expect(released.Annotations).NotTo(HaveKey(v1alpha1.AnnotationBlockMove))
		}).Should(Succeed())
		Eventually(func() []string { return eventsOn(ctx, ns, "Machine", m.Name) }).Should(ContainElements(
			HavePrefix("PowerOffRequested: "), HavePrefix("PoweredOff: "), HavePrefix("PoweredOn: "), HavePrefix("RebootVerified: ")))
	})
})

// bmcPolicy makes the node's machine power-cyclable through bmc: the
// credentials in the manager's namespace, lent to ns; a NodeCyclePolicy
// "bmc" in ns naming the BMC; and a kubelet that follows the machine.
func bmcPolicy(ctx SpecContext, ns, node string, bmc *peers.BMC) {
	GinkgoHelper()
	Expect(framework.LendBMC(ctx, k8s, ns, node, bmc)).To(Succeed())
	cs, err := kubernetes.NewForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())
	kctx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	go (&framework.PowerKubelet{Client: cs, Node: node, Observe: bmc.Observe}).Run(kctx)
}
