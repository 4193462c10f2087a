package integration

import (
	"context"
	"os"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/power/ipmi"
	"github.com/nodecycle/nodecycle/power/vsphere"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/peers"
)

// powerPolicy creates the credentials Secret and a NodeCyclePolicy for the
// cluster's nodes.
func (c *cluster) powerPolicy(strategies []v1alpha1.Strategy, pc v1alpha1.PowerCycleSpec, user, pass string) {
	GinkgoHelper()
	Expect(env.Client.Create(c.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "power", Namespace: c.name},
		Data:       map[string][]byte{"username": []byte(user), "password": []byte(pass)},
	})).To(Succeed())
	pc.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "power"}
	Expect(env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "power", Namespace: c.name},
		Spec: v1alpha1.NodeCyclePolicySpec{
			NodeSelector: metav1.LabelSelector{MatchLabels: map[string]string{runLabel: c.name}},
			Strategies:   strategies,
			PowerCycle:   &pc,
		},
	})).To(Succeed())
}

func (c *cluster) setNode(name string, mutate func(*corev1.Node)) {
	GinkgoHelper()
	n := c.getNode(name)
	before := n.DeepCopy()
	mutate(n)
	Expect(env.Client.Patch(c.ctx, n, client.MergeFrom(before))).To(Succeed())
}

// setRebootRequired writes the condition as an agent would have before it died.
func setRebootRequired(node string) {
	GinkgoHelper()
	patch := nodes.ConditionPatch(nil, corev1.NodeCondition{Type: v1alpha1.ConditionRebootRequired, Status: corev1.ConditionTrue,
		Reason: string(v1alpha1.ReasonSentinelFilePresent), Message: "Sentinel file /var/run/reboot-required is present"}, time.Now())
	n, err := env.Clientset.CoreV1().Nodes().PatchStatus(context.Background(), node, patch)
	Expect(err).NotTo(HaveOccurred())
	checked := nodes.AnnotationsPatch(map[string]*string{v1alpha1.AnnotationCheckedBoot: &n.Status.NodeInfo.BootID})
	_, err = env.Clientset.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, checked, metav1.PatchOptions{})
	Expect(err).NotTo(HaveOccurred())
}

var _ = Describe("Power-cycle", func() {
	It("drains, power-cycles through vSphere, verifies the new boot and uncordons", func() {
		vc, err := peers.StartVCenter()
		Expect(err).NotTo(HaveOccurred())
		defer vc.Stop()
		uuid := vc.PoweredOnVMUUIDs()[0]

		c := newCluster("power-vsphere", 1)
		node := c.node(1)
		c.deploy("web", 1, 1)
		c.setNode(node, func(n *corev1.Node) { n.Spec.ProviderID = "vsphere://" + uuid })
		c.powerPolicy([]v1alpha1.Strategy{v1alpha1.StrategyPowerCycle},
			v1alpha1.PowerCycleSpec{Provider: vsphere.Name, Endpoint: vc.Endpoint, InsecureSkipVerify: true,
				SoftOffTimeout: v1alpha1.NewDuration(2 * time.Second), PowerTimeout: v1alpha1.NewDuration(time.Minute)},
			vc.Username, vc.Password)

		a := c.agents[node]
		go (&framework.PowerKubelet{Client: env.Clientset, Node: node,
			Observe: func(ctx context.Context) (bool, string, error) { return vc.Observe(ctx, uuid) },
			OnBoot:  func() { _ = os.Remove(a.sentinel()) }}).Run(c.ctx)

		a.requireReboot()
		stop := startManager(c.managerFlags("--reboot-timeout=1m", "--retry-backoff=1h")...)
		defer stop()

		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseSucceeded}}))
		nc := c.cycleOf(node)
		Expect(nc.Spec.Policy).To(Equal("power"))
		Expect(nc.Status.Strategy).To(Equal(v1alpha1.StrategyPowerCycle))
		Expect(nc.Status.BootIDAfter).NotTo(Equal(nc.Status.BootIDBefore))
		Expect(a.reboots()).To(Equal(0), "no in-place reboot was requested")
		Eventually(func() []string { return eventReasons(node) }).Should(ContainElements("Drained", "PowerOffRequested", "PoweredOff", "PoweredOn", "RebootVerified", "Uncordoned"))
		c.expectNothingCordoned()
		Expect(phaseList(nc)).To(ContainElements(v1alpha1.PhasePoweringOff, v1alpha1.PhasePoweringOn, v1alpha1.PhaseWaitingForNodeReady))
	})

	It("escalates from a reboot the agent never does to a power cycle through IPMI", func() {
		bmc, err := peers.StartBMC()
		Expect(err).NotTo(HaveOccurred())
		defer bmc.Stop()

		c := newCluster("power-ipmi", 1)
		node := c.node(1)
		// The agent is gone: the condition it last published stays, nobody acks.
		c.agents[node].stop()
		delete(c.agents, node)
		setRebootRequired(node)
		// H5: what the node can write does not choose the BMC; the policy's table does.
		c.setNode(node, func(n *corev1.Node) { n.Annotations["nodecycle.io/bmc-address"] = "127.0.0.1:1" })
		c.powerPolicy([]v1alpha1.Strategy{v1alpha1.StrategyReboot, v1alpha1.StrategyPowerCycle},
			v1alpha1.PowerCycleSpec{Provider: ipmi.Name, Machines: map[string]string{node: bmc.Addr}, SoftOffTimeout: v1alpha1.NewDuration(time.Second), PowerTimeout: v1alpha1.NewDuration(time.Minute)},
			bmc.Username, bmc.Password)
		go (&framework.PowerKubelet{Client: env.Clientset, Node: node, Observe: bmc.Observe}).Run(c.ctx)

		stop := startManager(c.managerFlags("--reboot-timeout=3s", "--retry-backoff=1h")...)
		defer stop()

		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseSucceeded}}))
		nc := c.cycleOf(node)
		Expect(nc.Status.Strategy).To(Equal(v1alpha1.StrategyPowerCycle))
		Expect(nc.Status.BootIDAfter).NotTo(Equal(nc.Status.BootIDBefore))
		Eventually(func() []string { return eventReasons(node) }).Should(ContainElements("RebootRequested", "Escalating", "PoweredOff", "PoweredOn", "RebootVerified"))
		c.expectNothingCordoned()
		Consistently(c.phases, 2*time.Second).Should(HaveLen(1), "the stale condition opens no second NodeCycle")
	})

	It("fails fast on wrong credentials, naming the provider and not the password, and never touches the node", func() {
		vc, err := peers.StartVCenter()
		Expect(err).NotTo(HaveOccurred())
		defer vc.Stop()
		c := newCluster("power-badauth", 1)
		node := c.node(1)
		c.setNode(node, func(n *corev1.Node) { n.Spec.ProviderID = "vsphere://" + vc.PoweredOnVMUUIDs()[0] })
		c.powerPolicy([]v1alpha1.Strategy{v1alpha1.StrategyPowerCycle},
			v1alpha1.PowerCycleSpec{Provider: vsphere.Name, Endpoint: vc.Endpoint, InsecureSkipVerify: true},
			vc.Username, "Sw0rdf1sh-wrong")
		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags("--retry-backoff=1h")...)
		defer stop()

		Eventually(c.phases).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseFailed}}))
		nc := c.cycleOf(node)
		Expect(nc.Status.Reason).To(Equal(v1alpha1.ReasonProviderError))
		Expect(nc.Status.Message).To(ContainSubstring("power-cycle provider vsphere"))
		Expect(nc.Status.Message).To(ContainSubstring("login"))
		Expect(nc.Status.Message).NotTo(ContainSubstring("Sw0rdf1sh"))
		maxCordoned, requested := c.inv.snapshot()
		Expect(maxCordoned).To(Equal(0), "the node was never cordoned")
		Expect(requested).To(BeEmpty())
		list, err := env.Clientset.CoreV1().Events("").List(c.ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		for _, e := range list.Items {
			Expect(e.Message).NotTo(ContainSubstring("Sw0rdf1sh"), "Event %s/%s", e.Namespace, e.Name)
		}
	})

	It("leaves a node alone that two policies select, and says so", func() {
		c := newCluster("power-ambiguous", 1)
		node := c.node(1)
		for _, name := range []string{"a", "b"} {
			Expect(env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.name},
				Spec:       v1alpha1.NodeCyclePolicySpec{NodeSelector: metav1.LabelSelector{MatchLabels: map[string]string{runLabel: c.name}}},
			})).To(Succeed())
		}
		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags()...)
		defer stop()
		Eventually(func() []string { return eventReasons(node) }).Should(ContainElement("PolicyError"))
		Consistently(c.phases, 2*time.Second).Should(BeEmpty())
		Expect(c.getNode(node).Spec.Unschedulable).To(BeFalse())
	})
})

var _ = Describe("NodeCyclePolicy validation", func() {
	It("reports a policy whose Secret is missing or whose power-cycle has no provider, in its Valid condition and an Event", func() {
		c := newCluster("policy-invalid", 0)
		stop := startManager(c.managerFlags()...)
		defer stop()
		bad := &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: c.name},
			Spec: v1alpha1.NodeCyclePolicySpec{
				Strategies: []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle},
				PowerCycle: &v1alpha1.PowerCycleSpec{Provider: ipmi.Name, CredentialsSecretRef: &v1alpha1.SecretReference{Name: "missing"}},
			},
		}
		Expect(env.Client.Create(c.ctx, bad)).To(Succeed())
		noProvider := &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "no-provider", Namespace: c.name},
			Spec: v1alpha1.NodeCyclePolicySpec{
				NodeSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pool": "none"}},
				Strategies:   []v1alpha1.Strategy{v1alpha1.StrategyReboot, v1alpha1.StrategyPowerCycle},
			},
		}
		Expect(env.Client.Create(c.ctx, noProvider)).To(Succeed())
		valid := func(name string) func(Gomega) *metav1.Condition {
			return func(g Gomega) *metav1.Condition {
				p := &v1alpha1.NodeCyclePolicy{}
				g.Expect(env.Client.Get(c.ctx, client.ObjectKey{Namespace: c.name, Name: name}, p)).To(Succeed())
				return meta.FindStatusCondition(p.Status.Conditions, "Valid")
			}
		}
		Eventually(valid("bad")).Should(And(HaveField("Status", metav1.ConditionFalse),
			HaveField("Message", ContainSubstring("credentials Secret policy-invalid/missing not found"))))
		Eventually(valid("no-provider")).Should(And(HaveField("Status", metav1.ConditionFalse),
			HaveField("Message", ContainSubstring("strategy power-cycle needs spec.powerCycle"))))

		By("a malformed duration never gets in: the API server refuses it")
		raw := []byte(`{"apiVersion":"nodecycle.io/v1alpha1","kind":"NodeCyclePolicy","metadata":{"name":"typo"},"spec":{"rebootTimeout":"ten minutes"}}`)
		err := env.Clientset.Discovery().RESTClient().Post().AbsPath("/apis/nodecycle.io/v1alpha1/namespaces/"+c.name+"/nodecyclepolicies").
			Body(raw).SetHeader("Content-Type", "application/json").Do(c.ctx).Error()
		Expect(err).To(MatchError(ContainSubstring("rebootTimeout")))
		err = env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "unknown-strategy", Namespace: c.name},
			Spec:       v1alpha1.NodeCyclePolicySpec{Strategies: []v1alpha1.Strategy{"kexec"}},
		})
		Expect(err).To(MatchError(ContainSubstring("Unsupported value: \"kexec\"")))
	})
})

func phaseList(nc v1alpha1.NodeCycle) []v1alpha1.Phase {
	var out []v1alpha1.Phase
	for _, d := range nc.Status.PhaseDurations {
		out = append(out, d.Phase)
	}
	return out
}
