package clusterapi

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

var _ = Describe("The story where operators look", func() {
	It("is told by kubectl describe machine and, in the workload cluster, kubectl describe node; a manager restart raises no false alarm", func(ctx SpecContext) {
		const ns, cluster = "story", "tale"
		machine := clusterWithPool(ctx, ns, cluster, "pool", 1, "reboot")[0]
		nodeName := machine.Status.NodeRef.Name
		startKubelet(env.Config, time.Second)
		mgmt, err := env.AdminKubeconfig()
		Expect(err).NotTo(HaveOccurred())
		// The workload cluster as its users reach it: through its own kubeconfig.
		secret := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: cluster + "-kubeconfig"}, secret)).To(Succeed())
		workload := filepath.Join(GinkgoT().TempDir(), "workload.kubeconfig")
		Expect(os.WriteFile(workload, secret.Data["value"], 0o600)).To(Succeed())

		stop := startManager()
		requireReboot(ctx, k8s, nodeName)
		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(1))
			g.Expect(cycles[0].Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), cycles[0].Status.Message)
		}).Should(Succeed())

		story := []string{"MaintenanceStarted", "RemediationPaused", "Cordoned", "Drained",
			"RebootRequested", "RebootVerified", "Uncordoned", "MaintenanceCompleted"}
		By("kubectl describe machine shows every step (Events found by the Machine's UID)")
		Eventually(func(g Gomega) {
			out := kubectl("--kubeconfig", mgmt, "describe", "machine", "-n", ns, machine.Name)
			for _, reason := range append([]string{"NodeCycleCreated"}, story...) {
				g.Expect(out).To(ContainSubstring(reason))
			}
		}).Should(Succeed())
		By("kubectl describe node in the workload cluster shows them too")
		Eventually(func(g Gomega) {
			out := kubectl("--kubeconfig", workload, "describe", "node", nodeName)
			for _, reason := range append([]string{"NodeCycleCreated"}, story...) {
				g.Expect(out).To(ContainSubstring(reason))
			}
		}).Should(Succeed())

		By("a restarted manager reconnects without reporting the reachable cluster unreachable")
		stop()
		startManager()
		Consistently(func(g Gomega) {
			g.Expect(eventsOn(ctx, ns, "Cluster", cluster)).NotTo(ContainElement(ContainSubstring(string(v1alpha1.ReasonClusterUnreachable))))
		}).WithTimeout(8 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	})
})
