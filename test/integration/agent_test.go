package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/agent"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

var _ = Describe("Agent", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	It("publishes RebootRequired from the sentinel file, touching only its own condition", func() {
		Expect(sim.CreateNode(ctx, env.Clientset, "agent-file", nil)).To(Succeed())
		// Another controller's condition must survive the agent's writes.
		other := nodes.ConditionPatch(nil, corev1.NodeCondition{Type: "OtherCondition", Status: corev1.ConditionTrue, Reason: "Other"}, time.Now())
		_, err := env.Clientset.CoreV1().Nodes().PatchStatus(ctx, "agent-file", other)
		Expect(err).NotTo(HaveOccurred())

		a := newTestAgent("agent-file")
		a.start()
		defer a.stop()
		Eventually(conditionStatus("agent-file", v1alpha1.ConditionRebootRequired)).Should(Equal(corev1.ConditionFalse))

		a.requireReboot()
		Eventually(conditionStatus("agent-file", v1alpha1.ConditionRebootRequired)).Should(Equal(corev1.ConditionTrue))
		n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "agent-file", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		c := nodes.Condition(n, v1alpha1.ConditionRebootRequired)
		Expect(c.Reason).To(Equal(string(v1alpha1.ReasonSentinelFilePresent)))
		Expect(c.Message).To(ContainSubstring(a.sentinel()))
		Expect(nodes.IsConditionTrue(n, "OtherCondition")).To(BeTrue())
		Expect(nodes.IsReady(n)).To(BeTrue())

		Expect(os.Remove(a.sentinel())).To(Succeed())
		Eventually(conditionStatus("agent-file", v1alpha1.ConditionRebootRequired)).Should(Equal(corev1.ConditionFalse))

		// Someone removes the condition: the agent puts it back.
		By("restoring its condition after someone else rewrote it")
		rewrite := nodes.ConditionPatch(nil, corev1.NodeCondition{Type: v1alpha1.ConditionRebootRequired, Status: corev1.ConditionUnknown, Reason: "Tampered"}, time.Now())
		_, err = env.Clientset.CoreV1().Nodes().PatchStatus(ctx, "agent-file", rewrite)
		Expect(err).NotTo(HaveOccurred())
		Eventually(conditionStatus("agent-file", v1alpha1.ConditionRebootRequired)).Should(Equal(corev1.ConditionFalse))
	})

	It("records the boot it checked after the condition, and checks again on a new boot", func() {
		Expect(sim.CreateNode(ctx, env.Clientset, "agent-boot", nil)).To(Succeed())
		a := newTestAgent("agent-boot")
		a.requireReboot()
		a.start()
		defer a.stop()
		checked := func() string {
			n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "agent-boot", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			return n.Annotations[v1alpha1.AnnotationCheckedBoot]
		}
		n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "agent-boot", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(checked).Should(Equal(n.Status.NodeInfo.BootID))
		Expect(conditionStatus("agent-boot", v1alpha1.ConditionRebootRequired)()).To(Equal(corev1.ConditionTrue))

		By("a new boot, the sentinel gone: the condition changes before the boot is recorded")
		Expect(os.Remove(a.sentinel())).To(Succeed())
		a.stop() // a stopped agent does not see the sentinel go; its new process will check again
		Expect(sim.SetNodeStatus(ctx, env.Clientset, "agent-boot", "boot-2", true)).To(Succeed())
		Consistently(checked, time.Second).ShouldNot(Equal("boot-2"), "nothing has checked on boot-2 yet")
		w, err := env.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=agent-boot"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		a.start()
		deadline := time.After(10 * time.Second)
		for recorded := false; !recorded; {
			select {
			case ev := <-w.ResultChan():
				n := ev.Object.(*corev1.Node)
				if recorded = n.Annotations[v1alpha1.AnnotationCheckedBoot] == "boot-2"; recorded {
					Expect(nodes.Condition(n, v1alpha1.ConditionRebootRequired).Status).To(Equal(corev1.ConditionFalse),
						"when the new boot is recorded, the condition shows that boot's check")
				}
			case <-deadline:
				Fail("the agent never recorded boot-2")
			}
		}

		By("a running agent that sees its node on a new boot checks again before recording it")
		a.requireReboot()
		Eventually(conditionStatus("agent-boot", v1alpha1.ConditionRebootRequired)).Should(Equal(corev1.ConditionTrue))
		Expect(sim.SetNodeStatus(ctx, env.Clientset, "agent-boot", "boot-3", true)).To(Succeed())
		Eventually(checked).Should(Equal("boot-3"))
	})

	It("refuses a reboot request on a node that is not cordoned", func() {
		Expect(sim.CreateNode(ctx, env.Clientset, "agent-uncordoned", nil)).To(Succeed())
		a := newTestAgent("agent-uncordoned")
		a.start()
		defer a.stop()
		patch := nodes.AnnotationsPatch(signedRequest("agent-uncordoned", "req-1"))
		_, err := env.Clientset.CoreV1().Nodes().Patch(ctx, "agent-uncordoned", types.MergePatchType, patch, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Consistently(a.reboots, 2*time.Second).Should(Equal(0))
		n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "agent-uncordoned", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(n.Annotations).NotTo(HaveKey(v1alpha1.AnnotationRebootAck))

		By("cordoned (by an admin, whose cordon nodecycle keeps): the request is carried out")
		_, err = env.Clientset.CoreV1().Nodes().Patch(ctx, "agent-uncordoned", types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(a.reboots).Should(Equal(1))
	})

	It("acknowledges a reboot request, reboots exactly once, and never again for the same id after a restart", func() {
		Expect(sim.CreateNode(ctx, env.Clientset, "agent-reboot", nil)).To(Succeed())
		cordonedByNodecycle(ctx, "agent-reboot")
		a := newTestAgent("agent-reboot")
		a.start()

		patch := nodes.AnnotationsPatch(signedRequest("agent-reboot", "req-1"))
		_, err := env.Clientset.CoreV1().Nodes().Patch(ctx, "agent-reboot", types.MergePatchType, patch, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string {
			n, _ := env.Clientset.CoreV1().Nodes().Get(ctx, "agent-reboot", metav1.GetOptions{})
			return n.Annotations[v1alpha1.AnnotationRebootAck]
		}).Should(Equal("req-1"))
		Eventually(a.reboots).Should(Equal(1))
		// More node updates must not run the command again.
		_, err = env.Clientset.CoreV1().Nodes().Patch(ctx, "agent-reboot", types.MergePatchType, []byte(`{"metadata":{"labels":{"touched":"yes"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Consistently(a.reboots, 2*time.Second).Should(Equal(1))
		a.stop()

		By("restarting the agent with the request already acknowledged")
		a.start()
		Consistently(a.reboots, 3*time.Second).Should(Equal(1))

		By("a new request id reboots again")
		patch = nodes.AnnotationsPatch(signedRequest("agent-reboot", "req-2"))
		_, err = env.Clientset.CoreV1().Nodes().Patch(ctx, "agent-reboot", types.MergePatchType, patch, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(a.reboots).Should(Equal(2))
		a.stop()
	})

	It("publishes RebootRequired from a sentinel command", func() {
		Expect(sim.CreateNode(ctx, env.Clientset, "agent-command", nil)).To(Succeed())
		dir := GinkgoT().TempDir()
		flag := filepath.Join(dir, "needs-reboot")
		opts, err := agent.ParseOptions([]string{"--node-name=agent-command", "--sentinel-command=test -e " + flag, "--recheck-period=1s"}, noEnv, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		a := &agent.Agent{NodeName: opts.NodeName, Client: env.Clientset, Checker: opts.Checker(), Rebooter: opts.Rebooter(),
			SentinelFile: opts.WatchedFile(), RecheckPeriod: opts.RecheckPeriod}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(runCtx) }()
		defer func() { cancel(); Eventually(done).Should(Receive(BeNil())) }()

		Eventually(conditionStatus("agent-command", v1alpha1.ConditionRebootRequired)).Should(Equal(corev1.ConditionFalse))
		Expect(os.WriteFile(flag, nil, 0o644)).To(Succeed())
		Eventually(conditionStatus("agent-command", v1alpha1.ConditionRebootRequired), 10*time.Second).Should(Equal(corev1.ConditionTrue))
		n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "agent-command", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(nodes.Condition(n, v1alpha1.ConditionRebootRequired).Reason).To(Equal(string(v1alpha1.ReasonSentinelCommandSucceeded)))
	})

	It("reports a sentinel command that hangs as Unknown", func() {
		c := agent.CommandChecker{Argv: agent.HostCommand("sleep 10", false), Timeout: 200 * time.Millisecond}
		cond := c.Check(context.Background())
		Expect(cond.Status).To(Equal(corev1.ConditionUnknown))
		Expect(cond.Reason).To(Equal(string(v1alpha1.ReasonSentinelCheckFailed)))
		Expect(cond.Message).To(ContainSubstring("did not finish within 200ms"))
	})

	It("refuses to run for a node that does not exist, and says so", func() {
		a := &agent.Agent{NodeName: "no-such-node", Client: env.Clientset, Checker: agent.FileChecker{Path: "/nonexistent"},
			Rebooter: agent.SignalRebooter{}, RecheckPeriod: time.Minute}
		err := a.Run(ctx)
		Expect(err).To(MatchError(ContainSubstring(`node "no-such-node" does not exist`)))
		Expect(err).To(MatchError(ContainSubstring("--node-name")))
	})
})

func noEnv(string) (string, bool) { return "", false }

// cordonedByNodecycle cordons a node the way the manager does.
func cordonedByNodecycle(ctx context.Context, node string) {
	GinkgoHelper()
	patch := fmt.Sprintf(`{"spec":{"unschedulable":true},"metadata":{"annotations":{%q:"nodecycle-system/test"}}}`, v1alpha1.AnnotationCordonedBy)
	_, err := managerClient().CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	Expect(err).NotTo(HaveOccurred())
}

var _ = Describe("Agent binary", func() {
	It("serves /healthz, /readyz and the reboot-required gauge, with settings from the environment", func() {
		ctx := context.Background()
		Expect(sim.CreateNode(ctx, env.Clientset, "agent-binary", nil)).To(Succeed())
		dir := GinkgoT().TempDir()
		bin := filepath.Join(dir, "nodecycle-agent")
		out, err := exec.Command("go", "build", "-o", bin, filepath.Join(localkube.RepoRoot(), "cmd", "agent")).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		kubeconfig, err := env.AdminKubeconfig()
		Expect(err).NotTo(HaveOccurred())
		metricsAddr, probeAddr := freeAddr(), freeAddr()
		sentinel := filepath.Join(dir, "reboot-required")
		cmd := exec.Command(bin, "--kubeconfig="+kubeconfig, "--metrics-bind-address="+metricsAddr, "--health-probe-bind-address="+probeAddr)
		cmd.Env = append(os.Environ(), "NODE_NAME=agent-binary", "NODECYCLE_SENTINEL_FILE="+sentinel)
		cmd.Stdout, cmd.Stderr = GinkgoWriter, GinkgoWriter
		Expect(cmd.Start()).To(Succeed())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() { _ = cmd.Process.Kill() }()

		get := func(url string) func() (string, error) {
			return func() (string, error) {
				resp, err := http.Get(url)
				if err != nil {
					return "", err
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return fmt.Sprintf("%d %s", resp.StatusCode, b), nil
			}
		}
		Eventually(get("http://" + probeAddr + "/readyz")).Should(Equal("200 ok"))
		Expect(get("http://" + probeAddr + "/healthz")()).To(Equal("200 ok"))
		Eventually(get("http://" + metricsAddr + "/metrics")).Should(ContainSubstring("\nnodecycle_agent_reboot_required 0\n"))
		Expect(os.WriteFile(sentinel, nil, 0o644)).To(Succeed())
		Eventually(get("http://" + metricsAddr + "/metrics")).Should(ContainSubstring("\nnodecycle_agent_reboot_required 1\n"))
		Eventually(conditionStatus("agent-binary", v1alpha1.ConditionRebootRequired)).Should(Equal(corev1.ConditionTrue))

		By("stopping on SIGTERM")
		Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
		Eventually(exited, 10*time.Second).Should(Receive(BeNil()), "exit status 0")
	})
})

// freeAddr is a loopback address with a port nobody listens on.
func freeAddr() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().String()
}
