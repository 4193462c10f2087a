package integration

import (
	"bytes"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/kubectlplugin"
	"github.com/nodecycle/nodecycle/test/framework/peers"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

var _ = Describe("Gates", func() {
	It("does not start outside the maintenance window, and says when it opens", func() {
		c := newCluster("gate-window", 1)
		node := c.node(1)
		// A window that opened two hours from now and closes an hour later.
		from := time.Now().UTC().Add(2 * time.Hour)
		to := from.Add(time.Hour)
		Expect(env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: c.name},
			Spec: v1alpha1.NodeCyclePolicySpec{Gates: v1alpha1.Gates{MaintenanceWindows: []v1alpha1.MaintenanceWindow{
				{Start: from.Format("15:04"), End: to.Format("15:04")},
			}}},
		})).To(Succeed())
		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags()...)
		defer stop()

		Eventually(func() string { return c.messageOf(node) }).Should(
			ContainSubstring(fmt.Sprintf("Outside the maintenance windows; the next opens at %sT%s:00Z", from.Format("2006-01-02"), from.Format("15:04"))))
		Consistently(func() v1alpha1.Phase { return c.cycleOf(node).Status.Phase }, 2*time.Second).Should(Equal(v1alpha1.PhasePending))
		maxCordoned, _ := c.inv.snapshot()
		Expect(maxCordoned).To(Equal(0))
	})

	It("fails, before touching the node, when a window cannot be evaluated", func() {
		c := newCluster("gate-badzone", 1)
		node := c.node(1)
		Expect(env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "mars", Namespace: c.name},
			Spec: v1alpha1.NodeCyclePolicySpec{Gates: v1alpha1.Gates{MaintenanceWindows: []v1alpha1.MaintenanceWindow{
				{Start: "00:00", End: "00:00", TimeZone: "Mars/Olympus"},
			}}},
		})).To(Succeed())
		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags("--retry-backoff=1h")...)
		defer stop()

		Eventually(c.phases).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseFailed}}))
		nc := c.cycleOf(node)
		Expect(nc.Status.Reason).To(Equal(v1alpha1.ReasonInvalidMaintenanceWindow))
		Expect(nc.Status.Message).To(ContainSubstring(`time zone "Mars/Olympus"`))
		Expect(nc.Status.StartTime).To(BeNil(), "it never took a maintenance slot")
		maxCordoned, _ := c.inv.snapshot()
		Expect(maxCordoned).To(Equal(0))
	})

	It("waits while a blocking pod runs on the node, then goes ahead", func() {
		c := newCluster("gate-pod", 1)
		node := c.node(1)
		Expect(env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "backups", Namespace: c.name},
			Spec: v1alpha1.NodeCyclePolicySpec{Gates: v1alpha1.Gates{BlockingPodSelectors: []metav1.LabelSelector{
				{MatchLabels: map[string]string{"job": "backup"}},
			}}},
		})).To(Succeed())
		backup := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: c.name, Labels: map[string]string{"job": "backup"}},
			Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: ptr.To(int64(0)),
				Containers: []corev1.Container{{Name: "backup", Image: "busybox"}}},
		}
		Expect(env.Client.Create(c.ctx, backup)).To(Succeed())
		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags()...)
		defer stop()

		Eventually(func() string { return c.messageOf(node) }).Should(
			Equal(fmt.Sprintf("Waiting: pod %s/backup runs on the node (it matches the policy's blockingPodSelectors)", c.name)))
		Consistently(func() v1alpha1.Phase { return c.cycleOf(node).Status.Phase }, 2*time.Second).Should(Equal(v1alpha1.PhasePending))

		By("the backup finishes")
		Expect(env.Client.Delete(c.ctx, backup, client.GracePeriodSeconds(0))).To(Succeed())
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseSucceeded}}))
	})
})

var _ = Describe("Freezes", func() {
	It("holds new maintenance in a policy's freeze, says until when and why, and goes on when it is lifted", func() {
		c := newCluster("gate-freeze", 2)
		end := time.Now().Add(72 * time.Hour).Truncate(time.Second)
		policy := &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "holidays", Namespace: c.name},
			Spec: v1alpha1.NodeCyclePolicySpec{Gates: v1alpha1.Gates{Freezes: []v1alpha1.Freeze{{
				Start: time.Now().Add(-time.Hour).Format(time.RFC3339), End: end.Format(time.RFC3339), Reason: "holiday change freeze",
			}}}},
		}
		Expect(env.Client.Create(c.ctx, policy)).To(Succeed())
		c.agents[c.node(1)].requireReboot()
		stop := startManager(c.managerFlags()...)
		defer stop()

		want := "Waiting: frozen until " + end.UTC().Format(time.RFC3339) + ": holiday change freeze"
		Eventually(func() string { return c.messageOf(c.node(1)) }).Should(Equal(want))
		Consistently(func() v1alpha1.Phase { return c.cycleOf(c.node(1)).Status.Phase }, 2*time.Second).Should(Equal(v1alpha1.PhasePending))
		Eventually(func() []string { return eventReasons(c.node(1)) }).Should(ContainElement(string(v1alpha1.ReasonFrozen)))
		var out bytes.Buffer
		Expect(kubectlplugin.Run(c.ctx, []string{"status", "-n", c.name}, &out,
			func(string, string) (client.Client, error) { return env.Client, nil })).To(Succeed())
		Expect(out.String()).To(ContainSubstring("Frozen: NodeCyclePolicy holidays: frozen until " + end.UTC().Format(time.RFC3339) + ": holiday change freeze"))
		maxCordoned, _ := c.inv.snapshot()
		Expect(maxCordoned).To(Equal(0))

		By("lifting the freeze")
		Expect(env.Client.Get(c.ctx, client.ObjectKeyFromObject(policy), policy)).To(Succeed())
		policy.Spec.Freezes = nil
		Expect(env.Client.Update(c.ctx, policy)).To(Succeed())
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{c.node(1): {v1alpha1.PhaseSucceeded}}))
	})

	It("holds every cluster in the manager's --freeze until it ends", func() {
		c := newCluster("gate-freeze-all", 1)
		end := time.Now().Add(8 * time.Second)
		c.agents[c.node(1)].requireReboot()
		stop := startManager(c.managerFlags("--freeze=" + time.Now().Add(-time.Minute).Format(time.RFC3339) + "," + end.Format(time.RFC3339) + ",datacenter move")...)
		defer stop()

		Eventually(func() string { return c.messageOf(c.node(1)) }).Should(HaveSuffix(": datacenter move"))
		Expect(c.cycleOf(c.node(1)).Status.Phase).To(Equal(v1alpha1.PhasePending))
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{c.node(1): {v1alpha1.PhaseSucceeded}}))
		Expect(c.cycleOf(c.node(1)).Status.StartTime.Time).To(BeTemporally(">=", end.Truncate(time.Second)))
	})
})

// messageOf is the message of the node's NodeCycle, "" while it has none.
func (c *cluster) messageOf(node string) string {
	for _, nc := range nodeCycles(c.name) {
		if nc.Spec.NodeName == node {
			return nc.Status.Message
		}
	}
	return ""
}

var _ = Describe("Alert gate", func() {
	It("waits while a matching alert fires in Alertmanager, then goes ahead", func() {
		am, err := peers.StartAlertmanager()
		Expect(err).NotTo(HaveOccurred())
		defer am.Stop()
		c := newCluster("gate-alert", 1)
		node := c.node(1)
		Expect(env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "quiet", Namespace: c.name},
			Spec: v1alpha1.NodeCyclePolicySpec{Gates: v1alpha1.Gates{BlockingAlerts: &v1alpha1.AlertGate{
				AlertmanagerURL: am.URL, Matchers: []string{`severity="critical"`},
			}}},
		})).To(Succeed())
		Expect(am.Fire(map[string]string{"alertname": "EtcdNoLeader", "severity": "critical"}, time.Time{})).To(Succeed())
		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags()...)
		defer stop()

		Eventually(func() string { return c.messageOf(node) }).Should(Equal("Waiting: blocking alerts are firing: EtcdNoLeader"))
		Consistently(func() v1alpha1.Phase { return c.cycleOf(node).Status.Phase }, 2*time.Second).Should(Equal(v1alpha1.PhasePending))

		By("the alert resolves")
		Expect(am.Fire(map[string]string{"alertname": "EtcdNoLeader", "severity": "critical"}, time.Now())).To(Succeed())
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseSucceeded}}))
	})

	It("waits while a pod annotated nodecycle.io/do-not-disrupt=true runs on the node, without any policy", func() {
		c := newCluster("gate-dnd", 1)
		node := c.node(1)
		etl := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "etl", Namespace: c.name, Annotations: map[string]string{v1alpha1.AnnotationDoNotDisrupt: "true"}},
			Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: ptr.To(int64(0)),
				Containers: []corev1.Container{{Name: "etl", Image: "busybox"}}},
		}
		Expect(env.Client.Create(c.ctx, etl)).To(Succeed())
		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags()...)
		defer stop()

		Eventually(func() string { return c.messageOf(node) }).Should(
			Equal(fmt.Sprintf("Waiting: pod %s/etl runs on the node (nodecycle.io/do-not-disrupt=true)", c.name)))
		Consistently(func() v1alpha1.Phase { return c.cycleOf(node).Status.Phase }, 2*time.Second).Should(Equal(v1alpha1.PhasePending))

		By("the job finishes")
		Expect(env.Client.Delete(c.ctx, etl, client.GracePeriodSeconds(0))).To(Succeed())
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseSucceeded}}))
	})

	It("with --wait-for-healthy-pdbs, waits until every PodDisruptionBudget is healthy", func() {
		c := newCluster("gate-pdb", 1)
		node := c.node(1)
		// Its pod is not there yet: the budget wants 1 healthy pod and has none.
		Expect(env.Client.Create(c.ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: c.name},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}},
		})).To(Succeed())
		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags("--wait-for-healthy-pdbs")...)
		defer stop()

		Eventually(func() string { return c.messageOf(node) }).Should(
			Equal(fmt.Sprintf("Waiting: PodDisruptionBudgets not healthy yet: %s/db (0 of 1 healthy)", c.name)))
		Consistently(func() v1alpha1.Phase { return c.cycleOf(node).Status.Phase }, 2*time.Second).Should(Equal(v1alpha1.PhasePending))

		By("its pod runs elsewhere and is Ready")
		Expect(sim.CreateNode(c.ctx, env.Clientset, c.name+"-other", map[string]string{runLabel: c.name})).To(Succeed())
		Expect(env.Client.Create(c.ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: c.name, Labels: map[string]string{"app": "db"}},
			Spec:       corev1.PodSpec{NodeName: c.name + "-other", Containers: []corev1.Container{{Name: "db", Image: "postgres"}}},
		})).To(Succeed())
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseSucceeded}}))
	})
})

var _ = Describe("Ready before the uncordon", func() {
	It("keeps the rebooted node cordoned until its DaemonSet pod is Ready on the new boot and its startup taints are gone", func() {
		c := newCluster("pods-ready", 1)
		node := c.node(1)
		labels := map[string]string{"app": "cni", sim.LabelRestartByTest: "true"}
		ds := &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "cni", Namespace: c.name},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "cni", Image: "cni:1"}},
				}},
			},
		}
		Expect(env.Client.Create(c.ctx, ds)).To(Succeed())
		// Its pod on the node, as the DaemonSet controller makes it.
		pod := corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "cni-" + node, Namespace: c.name, Labels: labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: ptr.To(int64(1)),
				Tolerations: []corev1.Toleration{{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists}},
				Containers:  []corev1.Container{{Name: "cni", Image: "cni:1"}}},
		}
		Expect(env.Client.Create(c.ctx, &pod)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(env.Client.Get(c.ctx, client.ObjectKeyFromObject(&pod), &pod)).To(Succeed())
			g.Expect(pod.Status.Conditions).To(ContainElement(HaveField("Type", corev1.PodReady)))
		}).Should(Succeed())

		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags()...) // the default: wait for DaemonSet pods and startup taints
		defer stop()
		// Rebooted, Ready, but the pod's Ready dates from the old boot.
		Eventually(c.phases, time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseWaitingForPods}}))
		// (the API server's not-ready taint of a new Node stays here, with no
		// node lifecycle controller: it was there before the maintenance)
		Expect(c.messageOf(node)).To(HaveSuffix(fmt.Sprintf("waiting for pods to be Ready: %s/%s (timeout 10m0s)", c.name, pod.Name)))
		Consistently(func() bool { return c.getNode(node).Spec.Unschedulable }, 2*time.Second).Should(BeTrue())

		By("a CNI taints the node until its network is up")
		n := c.getNode(node)
		untainted := n.DeepCopy()
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "node.kubernetes.io/network-unavailable", Effect: corev1.TaintEffectNoSchedule})
		Expect(env.Client.Patch(c.ctx, n, client.MergeFrom(untainted))).To(Succeed())
		Eventually(func() string { return c.messageOf(node) }).Should(ContainSubstring(fmt.Sprintf(
			"waiting for pods to be Ready: %s/%s; startup taints to be removed: node.kubernetes.io/network-unavailable (timeout 10m0s)", c.name, pod.Name)))

		By("the kubelet starts the pod on the new boot")
		c.setPodReady(&pod, corev1.ConditionTrue)
		Eventually(func() string { return c.messageOf(node) }).Should(HaveSuffix(
			"waiting for startup taints to be removed: node.kubernetes.io/network-unavailable (timeout 10m0s)"))
		Consistently(func() bool { return c.getNode(node).Spec.Unschedulable }, 2*time.Second).Should(BeTrue())

		By("the network is up")
		n = c.getNode(node)
		tainted := n.DeepCopy()
		n.Spec.Taints = untainted.Spec.Taints
		Expect(env.Client.Patch(c.ctx, n, client.MergeFrom(tainted))).To(Succeed())
		Eventually(c.phases, time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseSucceeded}}))
		Expect(c.getNode(node).Spec.Unschedulable).To(BeFalse())
	})
})
