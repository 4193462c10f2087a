package clusterapi

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework"
)

var _ = Describe("Opt-in through the MachineDeployment", func() {
	It("leaves nodes alone without the annotation, and reports an invalid one without touching the node", func(ctx SpecContext) {
		const ns, cluster = "optin", "dev"
		_, err := capi.CreateCluster(ctx, ns, cluster, env.Config)
		Expect(err).NotTo(HaveOccurred())
		_, err = capi.CreateMachineDeployment(ctx, ns, cluster, "plain", 1, nil)
		Expect(err).NotTo(HaveOccurred())
		_, err = capi.CreateMachineDeployment(ctx, ns, cluster, "typo", 1, map[string]string{v1alpha1.AnnotationStrategy: "reboot,rebuild"})
		Expect(err).NotTo(HaveOccurred())
		_, err = capi.CreateControlPlaneMachine(ctx, ns, cluster, "dev-cp", map[string]string{v1alpha1.AnnotationStrategy: "reboot,replace"})
		Expect(err).NotTo(HaveOccurred())
		plain := readyMachines(ctx, k8s, ns, "plain", 1)[0]
		typo := readyMachines(ctx, k8s, ns, "typo", 1)[0]
		Eventually(func(g Gomega) { controlPlaneNode(ctx, g, ns, "dev-cp") }).Should(Succeed())
		cp := &clusterv1.Machine{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dev-cp"}, cp)).To(Succeed())

		startManager()
		for _, m := range []clusterv1.Machine{plain, typo, *cp} {
			requireReboot(ctx, k8s, m.Status.NodeRef.Name)
		}

		By("the invalid ladder is reported on its MachineDeployment and on the node")
		Eventually(func() []string { return eventsOn(ctx, ns, "MachineDeployment", "typo") }).Should(
			ContainElement(And(HavePrefix("InvalidStrategy: "), ContainSubstring(`unknown strategy "rebuild"`))))
		Eventually(func(g Gomega) {
			node := &corev1.Node{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: typo.Status.NodeRef.Name}, node)).To(Succeed())
			c := nodes.Condition(node, v1alpha1.ConditionMaintenanceInProgress)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal("InvalidStrategy"))
			g.Expect(c.Message).To(ContainSubstring("rebuild"))
		}).Should(Succeed())

		By("replace is refused for a control-plane Machine, on its control plane")
		Eventually(func() []string { return eventsOn(ctx, ns, "GenericControlPlane", "dev-cp") }).Should(
			ContainElement(And(HavePrefix("InvalidStrategy: "), ContainSubstring("replace is refused for control-plane Machines"))))

		By("nothing is done to any of the nodes")
		Consistently(func(g Gomega) {
			g.Expect(cyclesIn(ctx, ns)).To(BeEmpty())
			for _, m := range []clusterv1.Machine{plain, typo, *cp} {
				node := &corev1.Node{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Name: m.Status.NodeRef.Name}, node)).To(Succeed())
				g.Expect(node.Spec.Unschedulable).To(BeFalse())
				g.Expect(node.Annotations).NotTo(HaveKey(v1alpha1.AnnotationRebootRequest))
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&m), &clusterv1.Machine{})).To(Succeed())
			}
		}).WithTimeout(3 * time.Second).Should(Succeed())

		By("fixing the annotation opts the node in")
		setAnnotation(ctx, "typo", "reboot")
		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(1))
			g.Expect(cycles[0].Spec.MachineName).To(Equal(typo.Name))
			g.Expect(cycles[0].Spec.Strategies).To(Equal([]v1alpha1.Strategy{v1alpha1.StrategyReboot}))
			g.Expect(cycles[0].Status.Phase.Active()).To(BeTrue())
		}).Should(Succeed())

		By("opting in another pool while the slot is taken, then out again, withdraws its waiting NodeCycle")
		setAnnotation(ctx, "plain", "reboot")
		var waiting v1alpha1.NodeCycle
		Eventually(func(g Gomega) {
			for _, nc := range cyclesIn(ctx, ns) {
				if nc.Spec.MachineName == plain.Name {
					waiting = nc
				}
			}
			g.Expect(waiting.Status.Phase).To(Equal(v1alpha1.PhasePending))
		}).Should(Succeed())
		setAnnotation(ctx, "plain", "")
		Eventually(func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(&waiting), &waiting) }).Should(Satisfy(apierrors.IsNotFound))
		Eventually(func() []string { return eventsOn(ctx, ns, "Machine", plain.Name) }).Should(ContainElement(HavePrefix("Withdrawn: ")))
	})

	It("connects to the workload cluster of a Cluster only once a Machine of it opts in", func(ctx SpecContext) {
		const ns = "optin-reach"
		for _, c := range []string{"quiet", "loud"} {
			_, err := capi.CreateCluster(ctx, ns, c, env.Config)
			Expect(err).NotTo(HaveOccurred())
			var opt map[string]string
			if c == "loud" {
				opt = map[string]string{v1alpha1.AnnotationStrategy: "reboot"}
			}
			_, err = capi.CreateMachineDeployment(ctx, ns, c, c+"-pool", 1, opt)
			Expect(err).NotTo(HaveOccurred())
			readyMachines(ctx, k8s, ns, c+"-pool", 1)
		}
		stopManager, metrics, err := framework.StartManager(env.Config, GinkgoWriter, "--cluster-api", "--agent-pod-selector=")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(stopManager)
		// The reboot-required gauge has a value for each cluster whose Nodes the manager watches.
		watched := func() []string {
			families, err := metrics.Gather()
			Expect(err).NotTo(HaveOccurred())
			var out []string
			for _, f := range families {
				if f.GetName() != "nodecycle_nodes_reboot_required" {
					continue
				}
				for _, m := range f.GetMetric() {
					if v := m.GetLabel()[0].GetValue(); strings.HasPrefix(v, ns+"/") {
						out = append(out, v)
					}
				}
			}
			return out
		}
		Eventually(watched).Should(ContainElement(ns + "/loud"))
		Consistently(watched).WithTimeout(3 * time.Second).Should(Equal([]string{ns + "/loud"}))
		By("only the opted-in Cluster is marked for a connection")
		connect := func(name string) func() map[string]string {
			return func() map[string]string {
				c := &clusterv1.Cluster{}
				Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, c)).To(Succeed())
				return c.Annotations
			}
		}
		Expect(connect("loud")()).To(HaveKeyWithValue(v1alpha1.AnnotationConnect, "true"))
		Expect(connect("quiet")()).NotTo(HaveKey(v1alpha1.AnnotationConnect))

		By("opting its MachineDeployment in connects to the quiet cluster")
		md := &clusterv1.MachineDeployment{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "quiet-pool"}, md)).To(Succeed())
		patch := client.MergeFrom(md.DeepCopy())
		md.Annotations = map[string]string{v1alpha1.AnnotationStrategy: "reboot"}
		Expect(k8s.Patch(ctx, md, patch)).To(Succeed())
		Eventually(watched).Should(ConsistOf(ns+"/loud", ns+"/quiet"))
		Expect(connect("quiet")()).To(HaveKeyWithValue(v1alpha1.AnnotationConnect, "true"))
	})

	It("starts nothing on a paused Cluster", func(ctx SpecContext) {
		const ns = "paused"
		c, m := clusterWithOneMachine(ctx, ns, "frozen")
		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.Paused = ptr.To(true)
		Expect(k8s.Patch(ctx, c, patch)).To(Succeed())

		startManager()
		requireReboot(ctx, k8s, m.Status.NodeRef.Name)
		Consistently(func() []v1alpha1.NodeCycle { return cyclesIn(ctx, ns) }).WithTimeout(3 * time.Second).Should(BeEmpty())

		patch = client.MergeFrom(c.DeepCopy())
		c.Spec.Paused = nil
		Expect(k8s.Patch(ctx, c, patch)).To(Succeed())
		Eventually(func() []v1alpha1.NodeCycle { return cyclesIn(ctx, ns) }).Should(HaveLen(1))
	})

	It("holds new maintenance of a Cluster annotated nodecycle.io/paused, saying who and why", func(ctx SpecContext) {
		const ns = "paused-by"
		c, m := clusterWithOneMachine(ctx, ns, "upgrading")
		patch := client.MergeFrom(c.DeepCopy())
		c.Annotations = map[string]string{v1alpha1.AnnotationPaused: "carol: control plane upgrade"}
		Expect(k8s.Patch(ctx, c, patch)).To(Succeed())

		startManager()
		requireReboot(ctx, k8s, m.Status.NodeRef.Name)
		message := func() string { return onlyCycleMessage(ctx, ns) }
		Eventually(message).Should(Equal("Pending: Waiting: paused, Cluster upgrading: carol: control plane upgrade"))

		patch = client.MergeFrom(c.DeepCopy())
		delete(c.Annotations, v1alpha1.AnnotationPaused)
		Expect(k8s.Patch(ctx, c, patch)).To(Succeed())
		Eventually(message).ShouldNot(HavePrefix("Pending"))
	})
})

// Cluster API's own work on a cluster holds new maintenance there: the
// Cluster rolling out (its control plane or a MachineDeployment) or
// remediating Machines. (No Cluster controller runs in this suite, so the
// test writes the Cluster's conditions as it would.)
var _ = Describe("Cluster API lifecycle", func() {
	It("holds new maintenance while the Cluster rolls out or remediates, and says so", func(ctx SpecContext) {
		const ns = "lifecycle"
		c, m := clusterWithOneMachine(ctx, ns, "busy")
		setCondition := func(typ string, status metav1.ConditionStatus, message string) {
			GinkgoHelper()
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
			conditions.Set(c, metav1.Condition{Type: typ, Status: status, Reason: "Test", Message: message})
			Expect(k8s.Status().Update(ctx, c)).To(Succeed())
		}
		setCondition(clusterv1.ClusterRollingOutCondition, metav1.ConditionTrue, "* MachineDeployment pool: Rolling out 1 not up-to-date replicas")
		startManager()
		requireReboot(ctx, k8s, m.Status.NodeRef.Name)
		message := func() string { return onlyCycleMessage(ctx, ns) }
		Eventually(message).Should(Equal("Pending: Waiting: Cluster busy is rolling out (* MachineDeployment pool: Rolling out 1 not up-to-date replicas)"))

		setCondition(clusterv1.ClusterRollingOutCondition, metav1.ConditionFalse, "")
		setCondition(clusterv1.ClusterRemediatingCondition, metav1.ConditionTrue, "* Machine pool-x: MachineHealthCheck failed")
		Eventually(message, time.Minute).Should(Equal("Pending: Waiting: Cluster busy is remediating Machines (* Machine pool-x: MachineHealthCheck failed)"))

		setCondition(clusterv1.ClusterRemediatingCondition, metav1.ConditionFalse, "")
		Eventually(message, time.Minute).ShouldNot(HavePrefix("Pending"))
	})
})

// onlyCycleMessage is "phase: message" of the namespace's one NodeCycle,
// "" while there is not exactly one.
func onlyCycleMessage(ctx SpecContext, ns string) string {
	if list := cyclesIn(ctx, ns); len(list) == 1 {
		return string(list[0].Status.Phase) + ": " + list[0].Status.Message
	}
	return ""
}

// clusterWithOneMachine makes a Cluster whose MachineDeployment "pool" of
// one Machine opted in with reboot, and returns the Cluster and the Machine
// once it is ready.
func clusterWithOneMachine(ctx SpecContext, ns, name string) (*clusterv1.Cluster, clusterv1.Machine) {
	GinkgoHelper()
	c, err := capi.CreateCluster(ctx, ns, name, env.Config)
	Expect(err).NotTo(HaveOccurred())
	_, err = capi.CreateMachineDeployment(ctx, ns, name, "pool", 1, map[string]string{v1alpha1.AnnotationStrategy: "reboot"})
	Expect(err).NotTo(HaveOccurred())
	return c, readyMachines(ctx, k8s, ns, "pool", 1)[0]
}

// setAnnotation sets nodecycle.io/strategy on a MachineDeployment; "" removes it.
func setAnnotation(ctx SpecContext, md, value string) {
	GinkgoHelper()
	obj := &clusterv1.MachineDeployment{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "optin", Name: md}, obj)).To(Succeed())
	patch := client.MergeFrom(obj.DeepCopy())
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	obj.Annotations[v1alpha1.AnnotationStrategy] = value
	if value == "" {
		delete(obj.Annotations, v1alpha1.AnnotationStrategy)
	}
	Expect(k8s.Patch(ctx, obj, patch)).To(Succeed())
}
