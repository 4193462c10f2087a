package clusterapi

import (
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

var _ = Describe("Control-plane Machines", func() {
	It("are cycled alone: never together with another node of their cluster, whatever --max-concurrent says", func(ctx SpecContext) {
		const ns, cluster = "controlplane", "core"
		_, err := capi.CreateCluster(ctx, ns, cluster, env.Config)
		Expect(err).NotTo(HaveOccurred())
		_, err = capi.CreateControlPlaneMachine(ctx, ns, cluster, "core-cp", map[string]string{v1alpha1.AnnotationStrategy: "reboot"})
		Expect(err).NotTo(HaveOccurred())
		_, err = capi.CreateMachineDeployment(ctx, ns, cluster, "workers", 3, map[string]string{v1alpha1.AnnotationStrategy: "reboot"})
		Expect(err).NotTo(HaveOccurred())
		workers := readyMachines(ctx, k8s, ns, "workers", 3)
		cpNode := ""
		Eventually(func(g Gomega) { cpNode = controlPlaneNode(ctx, g, ns, "core-cp") }).Should(Succeed())
		startKubelet(env.Config, time.Second)

		var mu sync.Mutex
		active := map[string]bool{} // node -> active
		cpWithOthers, mostWorkers := false, 0
		watchEvents(ctx, &v1alpha1.NodeCycleList{}, &mu, func(deleted bool, nc *v1alpha1.NodeCycle) {
			active[nc.Spec.NodeName] = !deleted && nc.Status.Phase.Active()
			n, cp := 0, active[cpNode]
			for node, on := range active {
				if on && node != cpNode {
					n++
				}
			}
			cpWithOthers = cpWithOthers || (cp && n > 0)
			mostWorkers = max(mostWorkers, n)
		}, client.InNamespace(ns))

		startManager("--max-concurrent=2")
		requireReboot(ctx, k8s, cpNode)
		for _, m := range workers {
			requireReboot(ctx, k8s, m.Status.NodeRef.Name)
		}
		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(4))
			for _, nc := range cycles {
				g.Expect(nc.Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), "%s: %s", nc.Name, nc.Status.Message)
				g.Expect(nc.Spec.ControlPlane).To(Equal(nc.Spec.NodeName == cpNode))
			}
		}).WithTimeout(2 * time.Minute).Should(Succeed())
		mu.Lock()
		defer mu.Unlock()
		Expect(cpWithOthers).To(BeFalse(), "the control-plane node was in maintenance together with a worker")
		Expect(mostWorkers).To(Equal(2), "workers use both slots when the control plane is not in maintenance")
		cp := &clusterv1.Machine{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "core-cp"}, cp)).To(Succeed())
		// Events are recorded asynchronously.
		Eventually(func() []string { return eventsOn(ctx, ns, "Machine", cp.Name) }).Should(ContainElement(HavePrefix("MaintenanceCompleted")))
		Expect(eventsMissingUID(ctx, ns, "Machine", cp.Name, cp.UID)).To(BeEmpty(), "Events kubectl describe machine would not show")
	})
})
