package cooperative

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	lifecyclev1alpha1 "github.com/nodecycle/nodecycle/internal/apis/lifecycle/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/drain"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

const failover = "acme.io/db-failover"

// A responder that takes its time holds the drain, heartbeating, and the
// operator sees who holds it; once it lets the pod go, the cluster's
// evictor evicts it and the node is rebooted.
func TestResponderHoldsTheDrainThenLetsThePodGo(t *testing.T) {
	c := newTestCluster(t, env, "held")
	db := c.pod("db-0", nil, map[string]int64{failover: 5000})
	r := &sim.Responder{Name: failover, Namespace: c.name, Heartbeats: 5, Every: time.Second, Message: "moving the primary to db-1"}
	go r.Run(c.ctx, env.Client)
	c.startManager("--drain-timeout=2m")
	start := time.Now()
	c.requireReboot()

	c.g.Eventually(c.request, "30s").WithArguments(db).ShouldNot(BeNil())
	er := c.request(db)
	c.g.Expect(er.Spec.Requester).To(Equal(drain.Requester))
	c.g.Expect(er.Spec.Intent).To(Equal(lifecyclev1alpha1.IntentEviction))
	c.g.Expect(er.Spec.Target.Pod.UID).To(Equal(db.UID))
	requested := time.Since(start)

	// Who holds the drain: in the NodeCycle's message and an Event.
	c.g.Eventually(c.message).Should(MatchRegexp(`db-0 \(responder acme.io/db-failover active since \S+Z, heartbeat \S+Z: moving the primary to db-1\)`))
	held := c.message()
	c.g.Eventually(func() []string { return c.events(v1alpha1.ReasonEvictionResponder) }).Should(ContainElement(ContainSubstring("Pod held/db-0: responder acme.io/db-failover active")))
	c.g.Expect(c.terminating(db)).To(BeFalse(), "the pod goes only when its responder lets it")

	c.g.Eventually(c.gone(db)).Should(BeTrue())
	gone := time.Since(start)
	active, completed := r.Times()
	c.g.Expect(completed).NotTo(BeZero())
	c.g.Eventually(c.phase).Should(Equal(v1alpha1.PhaseSucceeded))
	c.g.Expect(c.events(v1alpha1.ReasonEvictionsWithdrawn)).To(BeEmpty())
	c.g.Expect(c.requests()).To(HaveLen(1), "one request per pod")
	t.Logf("timeline from RebootRequired: EvictionRequest %s; responder active %s; held: %q; responder completed %s (%d heartbeats); pod gone %s; NodeCycle Succeeded %s",
		requested.Round(time.Millisecond), active.Sub(start).Round(time.Millisecond), held, completed.Sub(start).Round(time.Millisecond), r.Heartbeats,
		gone.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	c.g.Expect(completed.Sub(active)).To(BeNumerically(">=", 4*time.Second), "the responder held the pod for its heartbeats")
}

// A responder that never answers holds the pod until the drain timeout:
// the drain fails, withdraws its request, and the cluster cancels the
// eviction; the pod stays and the node is uncordoned.
func TestResponderThatNeverAnswersTimesOutAndIsWithdrawn(t *testing.T) {
	c := newTestCluster(t, env, "silent")
	db := c.pod("db-0", nil, map[string]int64{failover: 5000})
	c.startManager("--drain-timeout=5s")
	c.requireReboot()

	c.g.Eventually(c.phase).Should(Equal(v1alpha1.PhaseFailed))
	nc := c.cycle()
	c.g.Expect(nc.Status.Reason).To(Equal(v1alpha1.ReasonDrainTimeout))
	c.g.Expect(nc.Status.Message).To(ContainSubstring("db-0 (responder acme.io/db-failover active"))
	c.g.Expect(c.request(db).Spec.Intent).To(Equal(lifecyclev1alpha1.IntentWithdrawn))
	c.g.Expect(c.events(v1alpha1.ReasonEvictionsWithdrawn)).To(ContainElement(ContainSubstring("Withdrew the EvictionRequests of 1 pods (the drain ended: DrainTimeout): silent/db-0")))
	c.g.Eventually(func(g Gomega) {
		ev := c.eviction(db)
		g.Expect(ev).NotTo(BeNil())
		g.Expect(ev.Status.Requesters).To(ContainElement(lifecyclev1alpha1.Requester{Name: drain.Requester, Intent: lifecyclev1alpha1.IntentWithdrawn}))
		g.Expect(ev.Status.TargetResponders).To(ContainElement(And(
			HaveField("Name", failover), HaveField("State", lifecyclev1alpha1.ResponderCanceled))))
	}).Should(Succeed())
	c.g.Expect(c.terminating(db)).To(BeFalse(), "a withdrawn eviction leaves the pod")
	c.g.Expect(c.cordoned()).To(BeFalse())
	// Released right after the save that ended the NodeCycle.
	c.g.Eventually(func() []string { return c.cycle().Finalizers }).ShouldNot(ContainElement(v1alpha1.FinalizerWithdrawEvictions))
}

// A pod without responders is evicted by the cluster's imperative evictor,
// which respects its PodDisruptionBudget: the drain waits while the PDB
// allows no disruption, and goes on once it does.
func TestPodWithoutRespondersGoesThroughTheEvictorAndItsPDB(t *testing.T) {
	c := newTestCluster(t, env, "plain")
	web := c.pod("web-0", map[string]string{"app": "web"}, nil)
	pdb := c.pdb("web", 1)
	c.startManager("--drain-timeout=2m")
	c.requireReboot()

	c.g.Eventually(c.message, "30s").Should(ContainSubstring("web-0 (responder " + lifecyclev1alpha1.ImperativeEvictor + " active"))
	c.g.Consistently(c.terminating, "3s").WithArguments(web).Should(BeFalse(), "the PDB allows no disruption")
	c.g.Expect(c.phase()).To(Equal(v1alpha1.PhaseDraining))
	t.Logf("held by the PDB: %q", c.message())

	before := pdb.DeepCopy()
	pdb.Spec.MinAvailable = ptr.To(intstrZero)
	c.g.Expect(env.Client.Patch(c.ctx, pdb, client.MergeFrom(before))).To(Succeed())
	c.g.Eventually(c.gone(web)).Should(BeTrue())
	c.g.Eventually(c.phase).Should(Equal(v1alpha1.PhaseSucceeded))
	c.g.Expect(c.request(web).Status.Conditions).To(ContainElement(And(
		HaveField("Type", lifecyclev1alpha1.ConditionTargetEvicted), HaveField("Status", BeEquivalentTo("True")))))
}

// A NodeCycle deleted mid-drain (the operator gives up) withdraws its
// requests before it goes.
func TestDeletedNodeCycleWithdrawsItsRequests(t *testing.T) {
	c := newTestCluster(t, env, "deleted")
	db := c.pod("db-0", nil, map[string]int64{failover: 5000})
	c.startManager("--drain-timeout=10m")
	c.requireReboot()
	c.g.Eventually(c.request, "30s").WithArguments(db).ShouldNot(BeNil())
	nc := c.cycle()
	c.g.Expect(nc.Finalizers).To(ContainElement(v1alpha1.FinalizerWithdrawEvictions))

	// The operator gives up on the node: excluded, so that no new
	// NodeCycle opens for it, and its NodeCycle deleted.
	node := &corev1.Node{}
	c.g.Expect(env.Client.Get(c.ctx, client.ObjectKey{Name: c.node()}, node)).To(Succeed())
	before := node.DeepCopy()
	node.Labels[v1alpha1.LabelExclude] = "true"
	c.g.Expect(env.Client.Patch(c.ctx, node, client.MergeFrom(before))).To(Succeed())
	c.g.Expect(env.Client.Delete(c.ctx, nc)).To(Succeed())
	c.g.Eventually(func() *lifecyclev1alpha1.EvictionRequest { return c.request(db) }).Should(HaveField("Spec.Intent", lifecyclev1alpha1.IntentWithdrawn))
	c.g.Eventually(c.cycle).Should(BeNil(), "the NodeCycle goes once its requests are withdrawn")
	c.g.Expect(c.terminating(db)).To(BeFalse())
	c.g.Expect(c.events(v1alpha1.ReasonEvictionsWithdrawn)).To(ContainElement(ContainSubstring("the NodeCycle was deleted")))
}

// The manager SIGKILLed while a responder holds the drain: the next one
// finds its request again by name, writes no second one, and finishes.
func TestManagerKilledMidDrainFindsItsRequests(t *testing.T) {
	c := newTestCluster(t, env, "killed")
	db := c.pod("db-0", nil, map[string]int64{failover: 5000})
	r := &sim.Responder{Name: failover, Namespace: c.name, Heartbeats: 6, Every: time.Second, Message: "moving the primary"}
	go r.Run(c.ctx, env.Client)
	bin, err := framework.BuildManager(t.TempDir())
	c.g.Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := env.AdminKubeconfig()
	c.g.Expect(err).NotTo(HaveOccurred())
	run := func() *exec.Cmd {
		cmd := exec.Command(bin, c.flags("--kubeconfig="+kubeconfig, "--leader-elect=false", "--metrics-bind-address=0",
			"--health-probe-bind-address=0", "--drain-timeout=2m")...)
		c.g.Expect(cmd.Start()).To(Succeed())
		return cmd
	}
	first := run()
	c.requireReboot()
	c.g.Eventually(c.message, "60s").Should(ContainSubstring("responder acme.io/db-failover active"))
	uid := c.request(db).UID
	c.g.Expect(first.Process.Signal(syscall.SIGKILL)).To(Succeed())
	_ = first.Wait()

	second := run()
	t.Cleanup(func() { _ = second.Process.Signal(syscall.SIGTERM); _ = second.Wait() })
	c.g.Eventually(c.phase).Should(Equal(v1alpha1.PhaseSucceeded))
	c.g.Expect(c.gone(db)()).To(BeTrue())
	c.g.Expect(c.requests()).To(HaveLen(1))
	c.g.Expect(c.requests()[0].UID).To(Equal(uid), "the request of the killed manager was kept, not written again")
}

// Forced to the Eviction API (drain.evictionRequests Never) on a cluster
// that serves EvictionRequests: no request is written.
func TestNeverDrainsThroughTheEvictionAPI(t *testing.T) {
	c := newTestCluster(t, env, "never")
	web := c.pod("web-0", map[string]string{"app": "web"}, nil)
	c.startManager("--drain-timeout=2m", "--drain-eviction-requests=never")
	c.requireReboot()
	c.g.Eventually(c.phase).Should(Equal(v1alpha1.PhaseSucceeded))
	c.g.Expect(c.cycle().Spec.Drain.EvictionRequests).To(Equal(v1alpha1.EvictionRequestsNever))
	c.g.Expect(c.gone(web)()).To(BeTrue())
	c.g.Expect(c.requests()).To(BeEmpty(), "requests %+v", c.requests())
	c.g.Expect(c.events(v1alpha1.ReasonEvicted)).To(ContainElement("Evicted pod never/web-0"))
}

// With the gate off the API server serves no EvictionRequests: the drain
// goes through the Eviction API and its PDBs as before; Always refuses to
// drain, and does nothing to the pods.
func TestWithoutTheGate(t *testing.T) {
	off, err := startEnv(false)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = off.Stop() })

	t.Run("the Eviction API and its PDBs", func(t *testing.T) {
		c := newTestCluster(t, off, "gate-off")
		web := c.pod("web-0", map[string]string{"app": "web"}, nil)
		pdb := c.pdb("web", 1)
		c.startManager("--drain-timeout=2m")
		c.requireReboot()
		c.g.Eventually(c.message, "30s").Should(ContainSubstring("web-0 (blocked by PDB gate-off/web allows 0 disruptions)"))
		before := pdb.DeepCopy()
		pdb.Spec.MinAvailable = ptr.To(intstrZero)
		c.g.Expect(off.Client.Patch(c.ctx, pdb, client.MergeFrom(before))).To(Succeed())
		c.g.Eventually(c.phase).Should(Equal(v1alpha1.PhaseSucceeded))
		c.g.Expect(c.gone(web)()).To(BeTrue())
		c.g.Expect(c.events(v1alpha1.ReasonEvicted)).To(ContainElement("Evicted pod gate-off/web-0"))
		c.g.Expect(c.cycle().Finalizers).To(BeEmpty())
	})
	t.Run("Always refuses", func(t *testing.T) {
		c := newTestCluster(t, off, "gate-off-always")
		web := c.pod("web-0", nil, nil)
		c.startManager("--drain-timeout=2m", "--drain-eviction-requests=always")
		c.requireReboot()
		c.g.Eventually(c.phase).Should(Equal(v1alpha1.PhaseFailed))
		nc := c.cycle()
		c.g.Expect(nc.Status.Reason).To(Equal(v1alpha1.ReasonDrainRefused))
		c.g.Expect(nc.Status.Message).To(ContainSubstring("drain.evictionRequests is Always, but the node's cluster does not serve lifecycle.k8s.io/v1alpha1 EvictionRequests"))
		c.g.Expect(c.terminating(web)).To(BeFalse())
		c.g.Expect(c.cordoned()).To(BeFalse())
		c.g.Expect(c.events(v1alpha1.ReasonEvicted)).To(BeEmpty())
	})
}

var intstrZero = intstr.FromInt32(0)

// I5: deleteAfterTimeout withdraws the drain's requests before it deletes
// the pods left: the responder is told to stop before its pod goes.
func TestDeleteAfterTimeoutWithdrawsFirst(t *testing.T) {
	c := newTestCluster(t, env, "delete-after")
	db := c.pod("db-0", nil, map[string]int64{failover: 5000})
	c.startManager("--drain-timeout=5s", "--delete-after-drain-timeout")
	c.requireReboot()

	c.g.Eventually(func() []string { return c.events(v1alpha1.ReasonPodsDeleted) }).ShouldNot(BeEmpty())
	c.g.Expect(c.request(db).Spec.Intent).To(Equal(lifecyclev1alpha1.IntentWithdrawn), "the request of a deleted pod was left asking")
	c.g.Expect(c.events(v1alpha1.ReasonEvictionsWithdrawn)).NotTo(BeEmpty())
}
