package integration

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

var _ = Describe("Hooks", func() {
	It("holds the reboot and the uncordon while other controllers' hook annotations are on the Node, with the policy's labels on it meanwhile", func() {
		c := newCluster("hooks", 1)
		node := c.node(1)
		Expect(env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "storage", Namespace: c.name},
			Spec:       v1alpha1.NodeCyclePolicySpec{Hooks: &v1alpha1.HookSpec{Labels: map[string]string{"storage.example.com/maintenance": "true"}}},
		})).To(Succeed())
		annotate := func(key string, value *string) {
			GinkgoHelper()
			Expect(nodes.SetAnnotations(c.ctx, env.Client, c.getNode(node), map[string]*string{key: value})).To(Succeed())
		}
		annotate(v1alpha1.PrefixPreRebootHook+"storage", ptr.To("moving replicas"))
		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags()...)
		defer stop()
		phase := func() v1alpha1.Phase {
			if p := c.phases()[node]; len(p) == 1 {
				return p[0]
			}
			return ""
		}

		By("the drained node waits for its pre-reboot hook, labelled, its condition naming the wait")
		Eventually(phase).Should(Equal(v1alpha1.PhaseWaitingForPreRebootHooks))
		Expect(c.messageOf(node)).To(ContainSubstring("waiting for hooks: storage (timeout 30m0s)"))
		n := c.getNode(node)
		Expect(n.Spec.Unschedulable).To(BeTrue())
		Expect(n.Labels).To(HaveKeyWithValue("storage.example.com/maintenance", "true"))
		Eventually(func() string { // written after the save that reached the phase
			if cond := nodes.Condition(c.getNode(node), v1alpha1.ConditionMaintenanceInProgress); cond != nil {
				return cond.Reason
			}
			return ""
		}).Should(Equal(string(v1alpha1.ReasonWaitingForHooks)))
		Consistently(func() int { return c.kubelet.Reboots(node) }, time.Second).Should(BeZero())

		By("released, the node reboots, then waits for its post-reboot hook, still cordoned")
		annotate(v1alpha1.PrefixPostRebootHook+"storage", ptr.To(""))
		annotate(v1alpha1.PrefixPreRebootHook+"storage", nil)
		Eventually(phase, time.Minute).Should(Equal(v1alpha1.PhaseWaitingForPostRebootHooks))
		Expect(c.kubelet.Reboots(node)).To(Equal(1))
		Expect(c.getNode(node).Spec.Unschedulable).To(BeTrue())

		By("released, the node is uncordoned and the label goes")
		annotate(v1alpha1.PrefixPostRebootHook+"storage", nil)
		Eventually(phase).Should(Equal(v1alpha1.PhaseSucceeded))
		n = c.getNode(node)
		Expect(n.Spec.Unschedulable).To(BeFalse())
		Expect(n.Labels).NotTo(HaveKey("storage.example.com/maintenance"))
		Expect(n.Annotations).NotTo(HaveKey(v1alpha1.AnnotationMaintenanceLabels))
		Expect(c.cycleOf(node).Spec.Hooks.Labels).To(HaveKeyWithValue("storage.example.com/maintenance", "true"))
	})

	It("does nothing while the node is not in maintenance", func() {
		c := newCluster("hooks-idle", 1)
		node := c.node(1)
		Expect(nodes.SetAnnotations(c.ctx, env.Client, c.getNode(node), map[string]*string{
			v1alpha1.PrefixPreRebootHook + "storage": ptr.To(""), v1alpha1.PrefixPostRebootHook + "storage": ptr.To("")})).To(Succeed())
		stop := startManager(c.managerFlags()...)
		defer stop()
		Consistently(func() []v1alpha1.NodeCycle { return nodeCycles(c.name) }, 2*time.Second).Should(BeEmpty())
		Expect(c.getNode(node).Spec.Unschedulable).To(BeFalse())
	})
})
