package clusterapi

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// The drain of a reboot honours Cluster API's MachineDrainRules and the pod
// label cluster.x-k8s.io/drain, as Cluster API's own drain does for a
// replace: Skip stays, WaitCompleted is waited for and never evicted, and
// a group of a higher order goes only once the groups before it are gone.
var _ = Describe("Cluster API drain rules", func() {
	It("skip, wait for completion and order the drain of a rebooted Machine's node", func(ctx SpecContext) {
		const ns = "drainrules"
		_, m := clusterWithOneMachine(ctx, ns, "rules")
		node := m.Status.NodeRef.Name
		startKubelet(env.Config, time.Second)
		rule := func(name, app string, behavior clusterv1.MachineDrainRuleDrainBehavior, order *int32) {
			GinkgoHelper()
			Expect(k8s.Create(ctx, &clusterv1.MachineDrainRule{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: clusterv1.MachineDrainRuleSpec{
					Drain:    clusterv1.MachineDrainRuleDrainConfig{Behavior: behavior, Order: order},
					Machines: []clusterv1.MachineDrainRuleMachineSelector{{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{clusterv1.MachineDeploymentNameLabel: "pool"}}}},
					Pods:     []clusterv1.MachineDrainRulePodSelector{{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}},
				},
			})).To(Succeed())
		}
		rule("a-keep", "keep", clusterv1.MachineDrainRuleDrainBehaviorSkip, nil)
		rule("b-job", "job", clusterv1.MachineDrainRuleDrainBehaviorWaitCompleted, nil)
		rule("c-db", "db", clusterv1.MachineDrainRuleDrainBehaviorDrain, ptr.To(int32(10)))
		// A rule of another pool's Machines does not apply.
		Expect(k8s.Create(ctx, &clusterv1.MachineDrainRule{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "d-other-pool"},
			Spec: clusterv1.MachineDrainRuleSpec{Drain: clusterv1.MachineDrainRuleDrainConfig{Behavior: clusterv1.MachineDrainRuleDrainBehaviorSkip},
				Machines: []clusterv1.MachineDrainRuleMachineSelector{{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{clusterv1.MachineDeploymentNameLabel: "other"}}}}},
		})).To(Succeed())
		pod := func(name string, labels map[string]string) *corev1.Pod {
			GinkgoHelper()
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
				Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: ptr.To(int64(1)), Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
			Expect(k8s.Create(ctx, p)).To(Succeed())
			return p
		}
		keep := pod("keep", map[string]string{"app": "keep"})
		labelled := pod("labelled", map[string]string{clusterv1.PodDrainLabel: "skip"})
		job := pod("job", map[string]string{"app": "job"})
		db := pod("db", map[string]string{"app": "db"})
		web := pod("web", map[string]string{"app": "web"})
		gone := func(p *corev1.Pod) func() bool {
			return func() bool {
				got := &corev1.Pod{}
				err := k8s.Get(ctx, client.ObjectKeyFromObject(p), got)
				return apierrors.IsNotFound(err) || (err == nil && got.DeletionTimestamp != nil)
			}
		}

		startManager()
		requireReboot(ctx, k8s, node)
		message := func() string { return onlyCycleMessage(ctx, ns) }
		By("order 0 first: web goes; the job is waited for; db (order 10) waits for them")
		Eventually(gone(web)).Should(BeTrue())
		Eventually(message).Should(And(HavePrefix("Draining: "),
			ContainSubstring(ns+"/job (waiting for it to complete (MachineDrainRule b-job))"),
			ContainSubstring(ns+"/db (drained after the pods of order 0 (MachineDrainRule c-db))")))
		Consistently(gone(db), 2*time.Second).Should(BeFalse())
		Consistently(gone(job), time.Second).Should(BeFalse(), "WaitCompleted is never evicted")

		By("the job completes: db is drained, the node rebooted")
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), job)).To(Succeed())
		job.Status.Phase = corev1.PodSucceeded
		Expect(k8s.Status().Update(ctx, job)).To(Succeed())
		Eventually(gone(db)).Should(BeTrue())
		Eventually(message, time.Minute).Should(HavePrefix(string(v1alpha1.PhaseSucceeded)))
		for _, p := range []*corev1.Pod{keep, labelled} {
			Expect(gone(p)()).To(BeFalse(), "pod %s is skipped by its rule", p.Name)
		}
		Expect(strings.Join(eventsOn(ctx, ns, "Machine", m.Name), "\n")).NotTo(ContainSubstring("Evicted pod " + ns + "/keep"))
	})
})
