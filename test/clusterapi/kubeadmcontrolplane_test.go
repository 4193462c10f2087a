package clusterapi

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

var _ = Describe("KubeadmControlPlane Machines", func() {
	It("are cycled only while their KubeadmControlPlane reports etcd healthy and neither rolls out nor remediates", func(ctx SpecContext) {
		const ns, cluster, name = "kcp", "kcp", "kcp-cp"
		_, err := capi.CreateCluster(ctx, ns, cluster, env.Config)
		Expect(err).NotTo(HaveOccurred())
		_, err = capi.CreateKubeadmControlPlaneMachine(ctx, ns, cluster, name, map[string]string{v1alpha1.AnnotationStrategy: "reboot"})
		Expect(err).NotTo(HaveOccurred())
		node := ""
		Eventually(func(g Gomega) { node = controlPlaneNode(ctx, g, ns, name) }).WithTimeout(2 * time.Minute).Should(Succeed())
		// What KubeadmControlPlane's controller reports while a member of
		// the etcd cluster is unhealthy and it rolls out.
		setKCPConditions(ctx, ns, name, map[string][2]string{
			"EtcdClusterHealthy":            {"False", "* Machine kcp-cp-2: etcd member is unhealthy"},
			"ControlPlaneComponentsHealthy": {"True", ""},
			"RollingOut":                    {"True", "Rolling out 1 not up-to-date replicas"},
			"Remediating":                   {"False", ""},
		})
		startKubelet(env.Config, time.Second)
		startManager()
		requireReboot(ctx, k8s, node)

		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(1))
			g.Expect(cycles[0].Status.Message).To(Equal("Waiting: KubeadmControlPlane kcp-cp: EtcdClusterHealthy is False (* Machine kcp-cp-2: etcd member is unhealthy); RollingOut is True (Rolling out 1 not up-to-date replicas)"))
		}).WithTimeout(time.Minute).Should(Succeed())
		n := &corev1.Node{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, n)).To(Succeed())
		Expect(nodes.Condition(n, v1alpha1.ConditionMaintenancePlanned)).To(HaveField("Reason", string(v1alpha1.ReasonControlPlaneUnhealthy)))
		Consistently(func() v1alpha1.Phase { return cyclesIn(ctx, ns)[0].Status.Phase }, 3*time.Second).Should(Equal(v1alpha1.PhasePending))

		By("the control plane is healthy and done rolling out")
		setKCPConditions(ctx, ns, name, map[string][2]string{
			"EtcdClusterHealthy": {"True", ""}, "ControlPlaneComponentsHealthy": {"True", ""}, "RollingOut": {"False", ""}, "Remediating": {"False", ""},
		})
		Eventually(func() v1alpha1.Phase { return cyclesIn(ctx, ns)[0].Status.Phase }).WithTimeout(2 * time.Minute).Should(Equal(v1alpha1.PhaseSucceeded))
	})
})

// setKCPConditions writes a KubeadmControlPlane's conditions (type ->
// status, message), as its controller would.
func setKCPConditions(ctx SpecContext, ns, name string, conds map[string][2]string) {
	GinkgoHelper()
	kcp := &unstructured.Unstructured{}
	kcp.SetGroupVersionKind(sim.KubeadmControlPlaneGVK)
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, kcp)).To(Succeed())
	var list []any
	for t, c := range conds {
		reason := "Healthy"
		if c[1] != "" {
			reason = "Problem"
		}
		list = append(list, map[string]any{"type": t, "status": c[0], "reason": reason, "message": c[1],
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339), "observedGeneration": kcp.GetGeneration()})
	}
	Expect(unstructured.SetNestedSlice(kcp.Object, list, "status", "conditions")).To(Succeed())
	Expect(k8s.Status().Update(ctx, kcp)).To(Succeed())
}
