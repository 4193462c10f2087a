package integration

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/power/vsphere"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/peers"
)

// The crash campaign: the manager process is SIGKILLed at random points
// while a cluster of agent-rebooted and vSphere-power-cycled nodes needs
// reboot after reboot. A Node watch checks all along that at most one node
// is cordoned, and the kubelets that at most one reboots; at the end
// nothing is left cordoned, every node was rebooted exactly once per boot
// that needed it (the kubelets' and the agents' own counts), and
// MaintenanceInProgress is False everywhere.
var _ = Describe("Crash campaign", func() {
	It("keeps every promise across at least 50 SIGKILLs of the manager, over at least 54 node cycles, reboot and power-cycle mixed", func() {
		const minRounds, maxRounds, minKills, agentNodes, powerNodes = 9, 40, 50, 4, 2
		// A round is done when each node has one more Succeeded NodeCycle,
		// so every one must be kept: the history holds maxRounds succeeded
		// ones and as many failed and retried ones again.
		historyLimit := fmt.Sprintf("--history-limit=%d", 2*maxRounds)
		vc, err := peers.StartVCenter()
		Expect(err).NotTo(HaveOccurred())
		defer vc.Stop()
		vms := vc.PoweredOnVMUUIDs()
		Expect(len(vms)).To(BeNumerically(">=", powerNodes))

		c := newCluster("crash", agentNodes+powerNodes)
		var bootsMu sync.Mutex
		boots := map[string]int{}
		for i := 1; i <= agentNodes+powerNodes; i++ {
			group := "reboot"
			if i > agentNodes {
				group = "power"
				node, uuid := c.node(i), vms[i-agentNodes-1]
				// No agent: the condition is written as an agent would.
				c.agents[node].stop()
				delete(c.agents, node)
				c.setNode(node, func(n *corev1.Node) { n.Spec.ProviderID = "vsphere://" + uuid })
				go (&framework.PowerKubelet{Client: env.Clientset, Node: node, InFlight: c.kubelet.InFlight,
					Observe: func(ctx context.Context) (bool, string, error) { return vc.Observe(ctx, uuid) },
					OnBoot:  func() { bootsMu.Lock(); boots[node]++; bootsMu.Unlock() }}).Run(c.ctx)
			}
			c.setNode(c.node(i), func(n *corev1.Node) { n.Labels["group"] = group })
		}
		Expect(env.Client.Create(c.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vcenter", Namespace: c.name},
			Data: map[string][]byte{"username": []byte(vc.Username), "password": []byte(vc.Password)}})).To(Succeed())
		Expect(env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "power", Namespace: c.name},
			Spec: v1alpha1.NodeCyclePolicySpec{
				NodeSelector: metav1.LabelSelector{MatchLabels: map[string]string{runLabel: c.name, "group": "power"}},
				Strategies:   []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle},
				PowerCycle: &v1alpha1.PowerCycleSpec{Provider: vsphere.Name, Endpoint: vc.Endpoint, InsecureSkipVerify: true,
					CredentialsSecretRef: &v1alpha1.SecretReference{Name: "vcenter"},
					SoftOffTimeout:       v1alpha1.NewDuration(time.Second), PowerTimeout: v1alpha1.NewDuration(time.Minute)},
			},
		})).To(Succeed())

		bin, err := framework.BuildManager(GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred())
		kubeconfig, err := env.AdminKubeconfig()
		Expect(err).NotTo(HaveOccurred())
		mgr := &framework.Killer{Bin: bin, Output: GinkgoWriter, MinUp: 500 * time.Millisecond, MaxUp: 3 * time.Second,
			Args: c.managerFlags("--kubeconfig="+kubeconfig, "--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0",
				historyLimit, "--reboot-loop-window=1ms", "--retry-backoff=1s", "--max-retry-backoff=2s")}
		mgr.Start()
		DeferCleanup(mgr.Stop)

		succeeded := func(node string) int {
			return framework.Succeeded(nodeCycles(c.name), func(nc *v1alpha1.NodeCycle) bool { return nc.Spec.NodeName == node })
		}
		start := time.Now()
		// At least minRounds rounds, and on until the manager was killed
		// minKills times (at most maxRounds rounds).
		r := 0
		for r < minRounds || (mgr.Kills() < minKills && r < maxRounds) {
			r++
			for i := 1; i <= agentNodes+powerNodes; i++ {
				if a, ok := c.agents[c.node(i)]; ok {
					a.requireReboot()
				} else {
					setRebootRequired(c.node(i))
				}
			}
			for i := 1; i <= agentNodes+powerNodes; i++ {
				node := c.node(i)
				Eventually(func() int { return succeeded(node) }, 3*time.Minute).Should(Equal(r), "round %d, node %s", r, node)
			}
		}
		Expect(mgr.Stop()).To(Succeed())

		By("a manager that is left to run clears up what the last kill left")
		final := startManager(c.managerFlags(historyLimit)...)
		defer final()
		Eventually(func(g Gomega) {
			for i := 1; i <= agentNodes+powerNodes; i++ {
				n := c.getNode(c.node(i))
				g.Expect(n.Spec.Unschedulable).To(BeFalse(), n.Name)
				g.Expect(n.Annotations).NotTo(HaveKey(v1alpha1.AnnotationCordonedBy), n.Name)
				g.Expect(nodes.IsConditionTrue(n, v1alpha1.ConditionMaintenanceInProgress)).To(BeFalse(), n.Name)
			}
		}).Should(Succeed())

		cycles, failed := len(nodeCycles(c.name)), 0
		for _, nc := range nodeCycles(c.name) {
			if nc.Status.Phase == v1alpha1.PhaseFailed {
				failed++
			}
		}
		mostRebooting, started := c.expectOneAtATime()
		maxCordoned, _ := c.inv.snapshot()
		bootsMu.Lock()
		defer bootsMu.Unlock()
		reboots, commands := map[string]int{}, map[string]int{}
		for i := 1; i <= agentNodes+powerNodes; i++ {
			node := c.node(i)
			if i <= agentNodes {
				reboots[node] = c.kubelet.Reboots(node)
				commands[node] = c.agents[node].reboots()
			} else {
				reboots[node] = boots[node]
			}
		}
		report := fmt.Sprintf("%d manager kills (SIGKILL), %d rounds, %d NodeCycles (%d failed and retried), reboots per node %v (agent reboot commands %v), at most %d node(s) cordoned and %d rebooting at once, %s",
			mgr.Kills(), r, cycles, failed, reboots, commands, maxCordoned, mostRebooting, time.Since(start).Round(time.Second))
		AddReportEntry("crash campaign", report)
		fmt.Fprintln(GinkgoWriter, "crash campaign:", report)
		Expect(mgr.Kills()).To(BeNumerically(">=", minKills), "the campaign must kill the manager often")
		Expect(maxCordoned).To(Equal(1), "one node cordoned at a time, and some were")
		Expect(mostRebooting).To(Equal(1), "one node rebooting at a time, and some did")
		Expect(started).To(Equal(r*(agentNodes+powerNodes)), "every reboot the kubelets saw")
		for node, n := range reboots {
			Expect(n).To(Equal(r), "node %s: exactly one reboot per boot that needed one", node)
		}
		for node, n := range commands {
			Expect(n).To(Equal(r), "node %s: the agent ran the reboot command once per request", node)
		}
	})
})
