package clusterapi

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework/peers"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// remediatedPool makes a Cluster with a MachineDeployment "pool" of one
// Machine (not opted in to planned maintenance), a
// NodeCycleRemediationTemplate with ladder and retryLimit, and Cluster
// API's MachineHealthCheck (a node NotReady for 1 s is unhealthy) naming
// it; it returns the Machine once Ready.
func remediatedPool(ctx SpecContext, ns, name string, ladder []v1alpha1.Strategy, retryLimit int32) clusterv1.Machine {
	GinkgoHelper()
	_, err := capi.CreateCluster(ctx, ns, name, env.Config)
	Expect(err).NotTo(HaveOccurred())
	return remediatedPoolIn(ctx, ns, name, ladder, retryLimit)
}

// remediatedPoolIn is remediatedPool in a Cluster that exists.
func remediatedPoolIn(ctx SpecContext, ns, name string, ladder []v1alpha1.Strategy, retryLimit int32) clusterv1.Machine {
	GinkgoHelper()
	_, err := capi.CreateMachineDeployment(ctx, ns, name, "pool", 1, nil)
	Expect(err).NotTo(HaveOccurred())
	m := readyMachines(ctx, k8s, ns, "pool", 1)[0]
	Expect(k8s.Create(ctx, &v1alpha1.NodeCycleRemediationTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nodecycle"},
		Spec: v1alpha1.NodeCycleRemediationTemplateSpec{Template: v1alpha1.NodeCycleRemediationTemplateResource{
			Spec: v1alpha1.NodeCycleRemediationSpec{Strategies: ladder, RetryLimit: retryLimit}}},
	})).To(Succeed())
	Expect(k8s.Create(ctx, sim.MachineHealthCheck(ns, name, "pool", "nodecycle"))).To(Succeed())
	return m
}

// MachineHealthCheck external remediation by nodecycle, with Cluster API's
// own MachineHealthCheck controller creating and deleting the remediation.
var _ = Describe("Remediation for MachineHealthChecks", func() {
	It("power-cycles an unhealthy node through its BMC; the MachineHealthCheck sees it healthy and deletes the remediation", func(ctx SpecContext) {
		bmc, err := peers.StartBMC()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(bmc.Stop)
		const ns = "remediate"
		m := remediatedPool(ctx, ns, "sick", []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle}, 2)
		node := m.Status.NodeRef.Name
		bmcPolicy(ctx, ns, node, bmc)
		cs, err := kubernetes.NewForConfig(env.Config)
		Expect(err).NotTo(HaveOccurred())
		startManager("--reboot-timeout=1m")
		before := &corev1.Node{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, before)).To(Succeed())

		By("the node hangs: NotReady; the MachineHealthCheck asks nodecycle")
		Expect(sim.SetNodeStatus(ctx, cs, node, "", false)).To(Succeed())
		rem := &v1alpha1.NodeCycleRemediation{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: m.Name}, rem)).To(Succeed())
			g.Expect(rem.Status.Phase).To(Equal(v1alpha1.RemediationRunning))
			g.Expect(rem.OwnerReferences).To(ContainElement(HaveField("Name", m.Name)))
		}).Should(Succeed())

		By("power-cycled; back on a new boot; the remediation is deleted by the MachineHealthCheck")
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: m.Name}, &v1alpha1.NodeCycleRemediation{})
		}, 2*time.Minute).Should(Satisfy(apierrors.IsNotFound))
		// The MachineHealthCheck may see the node Ready a moment before the
		// NodeCycle sees its new boot ID (two writes of the kubelet).
		var nc v1alpha1.NodeCycle
		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(1))
			nc = cycles[0]
			g.Expect(nc.Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), nc.Status.Message)
		}).Should(Succeed())
		Expect(nc.Status.Strategy).To(Equal(v1alpha1.StrategyPowerCycle))
		Expect(nc.Spec.Remediation).To(Equal(m.Name))
		after := &corev1.Node{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, after)).To(Succeed())
		Expect(after.Status.NodeInfo.BootID).NotTo(Equal(before.Status.NodeInfo.BootID))
		still := &clusterv1.Machine{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&m), still)).To(Succeed())
		Expect(still.DeletionTimestamp.IsZero()).To(BeTrue(), "remediated in place, not replaced")
		Eventually(func() []string { return eventsOn(ctx, ns, "Machine", m.Name) }).Should(ContainElements(
			HavePrefix("NodeCycleCreated: MachineHealthCheck remediation"), HavePrefix("PoweredOn: "), HavePrefix("RebootVerified: ")))
	})

	It("hands back a node that never comes back: its Machine is replaced and the replacement is Ready", func(ctx SpecContext) {
		const ns, name = "remediate-replace", "gone"
		_, err := capi.CreateCluster(ctx, ns, name, env.Config)
		Expect(err).NotTo(HaveOccurred())
		// Cluster API drains and deletes a deleted Machine's Node only in a
		// cluster with a control plane.
		_, err = capi.CreateControlPlaneMachine(ctx, ns, name, name+"-cp", nil)
		Expect(err).NotTo(HaveOccurred())
		m := remediatedPoolIn(ctx, ns, name, []v1alpha1.Strategy{v1alpha1.StrategyReboot, v1alpha1.StrategyReplace}, 1)
		cs, err := kubernetes.NewForConfig(env.Config)
		Expect(err).NotTo(HaveOccurred())
		// No kubelet answers the reboot: the node stays down.
		startManager("--reboot-timeout=3s")
		Expect(sim.SetNodeStatus(ctx, cs, m.Status.NodeRef.Name, "", false)).To(Succeed())
		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(1))
			g.Expect(cycles[0].Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), cycles[0].Status.Message)
			g.Expect(cycles[0].Status.Strategy).To(Equal(v1alpha1.StrategyReplace))
			g.Expect(cycles[0].Status.ReplacementMachine).NotTo(BeEmpty())
		}, 3*time.Minute).Should(Succeed())
		replacement := readyMachines(ctx, k8s, ns, "pool", 1)[0]
		Expect(replacement.Name).NotTo(Equal(m.Name))
		var phases []v1alpha1.Phase
		for _, d := range cyclesIn(ctx, ns)[0].Status.PhaseDurations {
			phases = append(phases, d.Phase)
		}
		Expect(phases).To(ContainElements(v1alpha1.PhaseWaitingForNodeReady, v1alpha1.PhaseDeletingMachine), "the reboot was tried first, then the Machine handed back")
	})

	It("fails, within its retry limit and with a message, for a Machine whose infrastructure it cannot power-cycle", func(ctx SpecContext) {
		const ns = "remediate-unknown"
		m := remediatedPool(ctx, ns, "nobmc", []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle}, 2)
		cs, err := kubernetes.NewForConfig(env.Config)
		Expect(err).NotTo(HaveOccurred())
		startManager()
		Expect(sim.SetNodeStatus(ctx, cs, m.Status.NodeRef.Name, "", false)).To(Succeed())
		rem := &v1alpha1.NodeCycleRemediation{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: m.Name}, rem)).To(Succeed())
			g.Expect(rem.Status.Phase).To(Equal(v1alpha1.RemediationFailed), rem.Status.Message)
		}).Should(Succeed())
		Expect(rem.Status.Attempts).To(Equal(int32(2)))
		Expect(rem.Status.Message).To(And(HavePrefix("2 of 2 attempts failed"), ContainSubstring("power")))
		Expect(cyclesIn(ctx, ns)).To(HaveLen(2))
		Eventually(func() []string { return eventsOn(ctx, ns, "NodeCycleRemediation", m.Name) }).Should(ContainElement(HavePrefix("RemediationFailed: ")))
	})
})
