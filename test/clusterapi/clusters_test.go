package clusterapi

import (
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

var _ = Describe("Many workload clusters", func() {
	It("works on each cluster one node at a time, in parallel, and reports a cluster it cannot reach", func(ctx SpecContext) {
		const ns = "fleet"
		// alpha's workload cluster is the management API server, beta has its
		// own API server, gamma's kubeconfig is broken once it is running.
		second, err := localkube.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(second.Stop)
		DeferCleanup(func(ctx SpecContext) error { return capi.DeleteCluster(ctx, ns, "beta") })
		secondClient, err := client.New(second.Config, client.Options{})
		Expect(err).NotTo(HaveOccurred())
		workloads := map[string]client.Client{"alpha": k8s, "beta": secondClient, "gamma": k8s}
		for _, c := range []string{"alpha", "beta", "gamma"} {
			cfg := env.Config
			if c == "beta" {
				cfg = second.Config
			}
			_, err = capi.CreateCluster(ctx, ns, c, cfg)
			Expect(err).NotTo(HaveOccurred())
			_, err = capi.CreateMachineDeployment(ctx, ns, c, c+"-pool", 2, map[string]string{v1alpha1.AnnotationStrategy: "reboot"})
			Expect(err).NotTo(HaveOccurred())
		}
		startKubelet(env.Config, 2*time.Second)
		startKubelet(second.Config, 2*time.Second)
		machines, machineNames := map[string][]string{}, map[string][]string{} // cluster -> node and Machine names
		for c, wc := range workloads {
			for _, m := range readyMachines(ctx, wc, ns, c+"-pool", 2) {
				machines[c] = append(machines[c], m.Status.NodeRef.Name)
				machineNames[c] = append(machineNames[c], m.Name)
			}
		}
		secret := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gamma-kubeconfig"}, secret)).To(Succeed())
		secret.Data["value"] = []byte("this is not a kubeconfig")
		Expect(k8s.Update(ctx, secret)).To(Succeed())

		// Active NodeCycles per cluster, from a watch.
		var mu sync.Mutex
		active := map[string]map[string]bool{"alpha": {}, "beta": {}}
		mostPerCluster, clustersAtOnce := 0, 0
		watchEvents(ctx, &v1alpha1.NodeCycleList{}, &mu, func(deleted bool, nc *v1alpha1.NodeCycle) {
			if active[nc.Spec.ClusterName] == nil {
				return
			}
			if !deleted && nc.Status.Phase.Active() {
				active[nc.Spec.ClusterName][nc.Name] = true
			} else {
				delete(active[nc.Spec.ClusterName], nc.Name)
			}
			busy := 0
			for _, set := range active {
				mostPerCluster = max(mostPerCluster, len(set))
				if len(set) > 0 {
					busy++
				}
			}
			clustersAtOnce = max(clustersAtOnce, busy)
		}, client.InNamespace(ns))

		stopManager, metrics, err := framework.StartManager(env.Config, GinkgoWriter, "--cluster-api", "--agent-pod-selector=")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(stopManager)
		for c, names := range machines {
			for _, n := range names {
				requireReboot(ctx, workloads[c], n)
			}
		}

		Eventually(func(g Gomega) {
			done := 0
			for _, nc := range cyclesIn(ctx, ns) {
				g.Expect(nc.Spec.ClusterName).NotTo(Equal("gamma"), "no NodeCycle is opened for a cluster that cannot be seen")
				if nc.Status.Phase == v1alpha1.PhaseSucceeded {
					done++
				}
			}
			g.Expect(done).To(Equal(4))
		}).WithTimeout(2 * time.Minute).Should(Succeed())

		mu.Lock()
		Expect(mostPerCluster).To(Equal(1), "nodes of one cluster in maintenance at once")
		Expect(clustersAtOnce).To(Equal(2), "clusters in maintenance at the same time")
		mu.Unlock()

		By("the reboot-required gauge counts per reachable cluster")
		// Other specs' clusters share this management cluster: only the fleet's are compared.
		families, err := metrics.Gather()
		Expect(err).NotTo(HaveOccurred())
		perCluster := map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				if f.GetName() == "nodecycle_nodes_reboot_required" && strings.HasPrefix(m.GetLabel()[0].GetValue(), ns+"/") {
					perCluster[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
		Expect(perCluster).To(Equal(map[string]float64{ns + "/alpha": 2, ns + "/beta": 2}), "gamma cannot be reached: no value rather than a stale one")

		By("the unreachable cluster is reported and its nodes are untouched")
		Eventually(func() []string { return eventsOn(ctx, ns, "Cluster", "gamma") }).Should(
			ContainElement(HavePrefix("ClusterUnreachable: ")))
		By("a NodeCycle of the unreachable cluster waits and says why")
		stuck := &v1alpha1.NodeCycle{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gamma-by-hand"},
			Spec: v1alpha1.NodeCycleSpec{
				NodeName: machines["gamma"][0], ClusterName: "gamma", MachineName: machineNames["gamma"][0], Strategies: []v1alpha1.Strategy{v1alpha1.StrategyReboot}, Attempt: 1,
				Drain: v1alpha1.DrainSpec{Timeout: v1alpha1.NewDuration(time.Minute), GracePeriodSeconds: -1}, RebootTimeout: v1alpha1.NewDuration(time.Minute),
			},
		}
		Expect(k8s.Create(ctx, stuck)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(stuck), stuck)).To(Succeed())
			g.Expect(stuck.Status.Message).To(HavePrefix("Waiting: cluster gamma cannot be reached: "))
			g.Expect(stuck.Status.Phase.Active()).To(BeFalse())
		}).Should(Succeed())
		for _, n := range machines["gamma"] {
			node := &corev1.Node{}
			Expect(k8s.Get(ctx, client.ObjectKey{Name: n}, node)).To(Succeed())
			Expect(node.Spec.Unschedulable).To(BeFalse())
			Expect(node.Annotations).NotTo(HaveKey(v1alpha1.AnnotationRebootRequest))
		}

		By("once the Cluster is deleted, its waiting NodeCycle ends as Skipped")
		Expect(capi.DeleteCluster(ctx, ns, "gamma")).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(stuck), stuck)).To(Succeed())
			g.Expect(stuck.Status.Phase).To(Equal(v1alpha1.PhaseSkipped))
			g.Expect(stuck.Status.Reason).To(Equal(v1alpha1.ReasonClusterDeleted))
		}).WithTimeout(time.Minute).Should(Succeed())
	})
})
