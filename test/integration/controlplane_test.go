package integration

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

var _ = Describe("Control-plane nodes", func() {
	It("go after the workers, one at a time, and never while another control-plane node's etcd is not Ready", func() {
		c := newCluster("cp", 5)
		cps := []string{c.node(1), c.node(2), c.node(3)}
		for _, n := range cps {
			node := c.getNode(n)
			patch := client.MergeFrom(node.DeepCopy())
			node.Labels[nodes.LabelControlPlane] = ""
			Expect(env.Client.Patch(c.ctx, node, patch)).To(Succeed())
			for _, component := range []string{"etcd", "kube-apiserver"} {
				// kubeadm's static pods, seen as their mirror pods.
				Expect(env.Client.Create(c.ctx, &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: component + "-" + n,
						Labels:      map[string]string{"component": component, "tier": "control-plane"},
						Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "static"}},
					Spec: corev1.PodSpec{NodeName: n, Containers: []corev1.Container{{Name: component, Image: "registry.k8s.io/" + component}},
						Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
				})).To(Succeed())
			}
		}
		unhealthy := &corev1.Pod{}
		Eventually(func(g Gomega) {
			g.Expect(env.Client.Get(c.ctx, client.ObjectKey{Namespace: metav1.NamespaceSystem, Name: "etcd-" + cps[1]}, unhealthy)).To(Succeed())
			g.Expect(unhealthy.Status.Phase).To(Equal(corev1.PodRunning))
		}).Should(Succeed())
		c.setPodReady(unhealthy, corev1.ConditionFalse)
		// The control-plane node whose etcd is unhealthy needs no reboot;
		// the two others and the workers do.
		for _, n := range []string{cps[0], cps[2], c.node(4), c.node(5)} {
			c.agents[n].requireReboot()
		}
		stop := startManager(c.managerFlags("--drain-timeout=2m", "--reboot-timeout=2m")...)
		defer stop()

		Eventually(c.phases, 2*time.Minute).Should(And(
			HaveKeyWithValue(c.node(4), []v1alpha1.Phase{v1alpha1.PhaseSucceeded}),
			HaveKeyWithValue(c.node(5), []v1alpha1.Phase{v1alpha1.PhaseSucceeded})), "the workers go on")
		for _, n := range []string{cps[0], cps[2]} {
			Eventually(func() string { return c.messageOf(n) }).Should(Equal(fmt.Sprintf("Waiting: another control-plane node does not serve: %s (etcd not Ready)", cps[1])))
			Eventually(func() *corev1.NodeCondition {
				return nodes.Condition(c.getNode(n), v1alpha1.ConditionMaintenancePlanned)
			}).
				Should(HaveField("Reason", string(v1alpha1.ReasonControlPlaneUnhealthy)))
		}
		Consistently(func() []v1alpha1.Phase { return append(c.phases()[cps[0]], c.phases()[cps[2]]...) }, 3*time.Second).
			Should(Equal([]v1alpha1.Phase{v1alpha1.PhasePending, v1alpha1.PhasePending}), "no control-plane node cycled")
		for _, n := range cps {
			Expect(c.kubelet.Reboots(n)).To(Equal(0))
		}

		By("the etcd member is healthy again: the control-plane nodes go, one at a time, after the workers")
		c.setPodReady(unhealthy, corev1.ConditionTrue)
		Eventually(c.phases, 2*time.Minute).Should(And(
			HaveKeyWithValue(cps[0], []v1alpha1.Phase{v1alpha1.PhaseSucceeded}),
			HaveKeyWithValue(cps[2], []v1alpha1.Phase{v1alpha1.PhaseSucceeded})))
		c.expectOneAtATime()
		var workersDone time.Time
		for _, n := range []string{c.node(4), c.node(5)} {
			if t := c.cycleOf(n).Status.CompletionTime.Time; t.After(workersDone) {
				workersDone = t
			}
		}
		for _, n := range []string{cps[0], cps[2]} {
			Expect(c.cycleOf(n).Status.StartTime.Time).To(BeTemporally(">=", workersDone), "%s started before the workers were done", n)
		}
	})
})

// setPodReady writes a pod's Ready condition, changed now, as its kubelet
// would.
func (c *cluster) setPodReady(p *corev1.Pod, st corev1.ConditionStatus) {
	GinkgoHelper()
	Eventually(func() error {
		if err := env.Client.Get(c.ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				p.Status.Conditions[i].Status = st
				p.Status.Conditions[i].LastTransitionTime = metav1.Now()
			}
		}
		return env.Client.Status().Update(c.ctx, p)
	}).Should(Succeed())
}
