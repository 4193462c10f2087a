package clusterapi

import (
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// The crash campaign in Cluster API mode: the manager binary is SIGKILLed
// at random points, at least 50 times, while the Machines of a reboot
// MachineDeployment and of a replace MachineDeployment need maintenance
// round after round. Watches check all along that at most one Node is
// cordoned and at most one Machine is being deleted, the kubelets that at
// most one node reboots (and the NodeCycles that at most one holds the
// cluster's slot); at the end every reboot node rebooted once per round,
// every replace Machine of a round was replaced once, and nothing is left
// cordoned.
// (The local campaign in test/integration mixes in power-cycles.)
var _ = Describe("Crash campaign in Cluster API mode", func() {
	It("keeps every promise across at least 50 SIGKILLs of the manager, reboot and replace mixed", func(ctx SpecContext) {
		const ns, cluster, minRounds, maxRounds, minKills, rebootNodes, replaceNodes = "crash", "fleet", 2, 20, 50, 3, 2
		_, err := capi.CreateCluster(ctx, ns, cluster, env.Config)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) error { return capi.DeleteCluster(ctx, ns, cluster) })
		_, err = capi.CreateControlPlaneMachine(ctx, ns, cluster, cluster+"-cp", nil)
		Expect(err).NotTo(HaveOccurred())
		_, err = capi.CreateMachineDeployment(ctx, ns, cluster, "reboot", rebootNodes, map[string]string{v1alpha1.AnnotationStrategy: "reboot"})
		Expect(err).NotTo(HaveOccurred())
		_, err = capi.CreateMachineDeployment(ctx, ns, cluster, "replace", replaceNodes, map[string]string{v1alpha1.AnnotationStrategy: "replace"})
		Expect(err).NotTo(HaveOccurred())
		rebooted := readyMachines(ctx, k8s, ns, "reboot", rebootNodes)
		readyMachines(ctx, k8s, ns, "replace", replaceNodes)
		kubelet := startKubelet(env.Config, time.Second)

		var mu sync.Mutex
		active, mostActive := map[types.UID]bool{}, 0
		watchEvents(ctx, &v1alpha1.NodeCycleList{}, &mu, func(deleted bool, nc *v1alpha1.NodeCycle) {
			if !deleted && nc.Status.Phase.Active() {
				active[nc.UID] = true
			} else {
				delete(active, nc.UID)
			}
			mostActive = max(mostActive, len(active))
		}, client.InNamespace(ns))
		replacing := mostDeleting(ctx, ns, "replace")
		cordoned := mostCordoned(ctx, ns)

		bin, err := framework.BuildManager(GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred())
		kubeconfig, err := env.AdminKubeconfig()
		Expect(err).NotTo(HaveOccurred())
		mgr := &framework.Killer{Bin: bin, Output: GinkgoWriter, MinUp: 500 * time.Millisecond, MaxUp: 3 * time.Second,
			Args: []string{"--cluster-api", "--agent-pod-selector=", "--kubeconfig=" + kubeconfig, "--leader-elect=false", "--metrics-bind-address=0",
				"--health-probe-bind-address=0", "--history-limit=50", "--reboot-loop-window=1ms", "--retry-backoff=1s", "--max-retry-backoff=2s"}}
		mgr.Start()
		DeferCleanup(mgr.Stop)

		succeeded := func(strategy v1alpha1.Strategy) int {
			return framework.Succeeded(cyclesIn(ctx, ns), func(nc *v1alpha1.NodeCycle) bool { return nc.Status.Strategy == strategy })
		}
		start := time.Now()
		round := 0
		for round < minRounds || (mgr.Kills() < minKills && round < maxRounds) {
			round++
			for _, m := range readyMachines(ctx, k8s, ns, "reboot", rebootNodes) {
				requireReboot(ctx, k8s, m.Status.NodeRef.Name)
			}
			for _, m := range readyMachines(ctx, k8s, ns, "replace", replaceNodes) {
				requireReboot(ctx, k8s, m.Status.NodeRef.Name)
			}
			Eventually(func(g Gomega) {
				g.Expect(succeeded(v1alpha1.StrategyReboot)).To(Equal(round*rebootNodes), "reboots of round %d", round)
				g.Expect(succeeded(v1alpha1.StrategyReplace)).To(Equal(round*replaceNodes), "replacements of round %d", round)
			}).WithTimeout(5 * time.Minute).Should(Succeed())
		}
		Expect(mgr.Stop()).To(Succeed())

		By("a manager that is left to run clears up what the last kill left")
		startManager("--history-limit=50")
		Eventually(func(g Gomega) {
			for _, md := range []string{"reboot", "replace"} {
				ms, err := sim.ReadyMachines(ctx, k8s, k8s, ns, md, map[string]int{"reboot": rebootNodes, "replace": replaceNodes}[md])
				g.Expect(err).NotTo(HaveOccurred())
				for _, m := range ms {
					n := &corev1.Node{}
					g.Expect(k8s.Get(ctx, client.ObjectKey{Name: m.Status.NodeRef.Name}, n)).To(Succeed())
					g.Expect(n.Spec.Unschedulable).To(BeFalse(), n.Name)
					g.Expect(n.Annotations).NotTo(HaveKey(v1alpha1.AnnotationCordonedBy), n.Name)
				}
			}
		}).Should(Succeed())

		reboots := map[string]int{}
		for _, m := range rebooted {
			reboots[m.Status.NodeRef.Name] = kubelet.Reboots(m.Status.NodeRef.Name)
		}
		mu.Lock()
		defer mu.Unlock()
		// The kubelet plays the nodes of every cluster of the management
		// cluster: this one's reboot nodes count.
		mostRebooting, started := kubelet.InFlight.Max(func(node string) bool { _, ok := reboots[node]; return ok })
		AddReportEntry("crash campaign (Cluster API)", fmt.Sprintf("%d manager kills (SIGKILL), %d rounds, %d NodeCycles, reboots per node %v, at most %d Node(s) cordoned, %d rebooting, %d Machine(s) deleting and %d NodeCycle(s) active at once, %s",
			mgr.Kills(), round, len(cyclesIn(ctx, ns)), reboots, cordoned(), mostRebooting, replacing(), mostActive, time.Since(start).Round(time.Second)))
		Expect(mgr.Kills()).To(BeNumerically(">=", minKills), "the campaign must kill the manager often")
		Expect(cordoned()).To(Equal(1), "one Node cordoned at a time (a Node watch), and some were")
		Expect(mostRebooting).To(Equal(1), "one node rebooting at a time (the kubelets' record), and some did")
		Expect(started).To(Equal(round*rebootNodes), "the kubelets saw every reboot")
		Expect(replacing()).To(Equal(1), "never two Machines deleted at once (a Machine watch), and some were")
		Expect(mostActive).To(Equal(1), "never two NodeCycles of the cluster in maintenance")
		for node, n := range reboots {
			Expect(n).To(Equal(round), "node %s: exactly one reboot per round", node)
		}
	})
})
