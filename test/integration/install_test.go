package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/settings"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// agentClient is what the agent's pod on node would be: its service
// account, with the node name its bound token carries.
func agentClient(node string) kubernetes.Interface { return agentClientIn("nodecycle-system", node) }

// agentClientIn is agentClient for an agent installed in namespace, with
// extra groups.
func agentClientIn(namespace, node string, groups ...string) kubernetes.Interface {
	GinkgoHelper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + namespace + ":nodecycle-agent",
		Groups:   append([]string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}, groups...),
		Extra:    map[string][]string{"authentication.kubernetes.io/node-name": {node}},
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// managerClient is what the manager's pod would be, with the rights of an
// admin: only admission policies stop it.
func managerClient() kubernetes.Interface {
	return impersonate("system:serviceaccount:nodecycle-system:nodecycle-manager")
}

// crClient is a controller-runtime client for user in groups, with only
// the rights RBAC gives them.
func crClient(user string, groups ...string) client.Client {
	GinkgoHelper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// impersonate is a client for user, with the rights of an admin: only
// admission policies stop it.
func impersonate(user string, groups ...string) kubernetes.Interface {
	GinkgoHelper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string{"system:masters", "system:authenticated"}, groups...)}
	return kubernetes.NewForConfigOrDie(cfg)
}

var _ = Describe("Installation with kubectl apply -k config/default", Ordered, func() {
	ctx := context.Background()

	// The node annotation policy applies to every writer: the other suites'
	// managers and helpers write as admin, so it goes when this suite ends.
	AfterAll(func() {
		Expect(env.Clientset.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, "nodecycle-requests", metav1.DeleteOptions{})).To(Succeed())
		Expect(env.Clientset.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, "nodecycle-node-annotations", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() error {
			p := nodes.AnnotationsPatch(map[string]*string{v1alpha1.AnnotationRebootRequest: ptr.To("probe")})
			_, err := env.Clientset.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, p, metav1.PatchOptions{})
			return err
		}, 30*time.Second).Should(Succeed())
	})

	BeforeAll(func() {
		user, err := env.Env.AddUser(envtestAdmin(), nil)
		Expect(err).NotTo(HaveOccurred())
		kc, err := user.KubeConfig()
		Expect(err).NotTo(HaveOccurred())
		path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
		Expect(os.WriteFile(path, kc, 0o600)).To(Succeed())
		kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
		out, err := exec.Command(kubectl, "--kubeconfig", path, "apply", "--server-side", "--force-conflicts",
			"-k", filepath.Join(localkube.RepoRoot(), "config", "default")).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("daemonset.apps/nodecycle-agent serverside-applied"))
		Expect(string(out)).To(ContainSubstring("deployment.apps/nodecycle-manager serverside-applied"))
		for _, n := range []string{"vap-1", "vap-2"} {
			Expect(sim.CreateNode(ctx, env.Clientset, n, nil)).To(Succeed())
		}
	})

	It("lets the agent write its own condition, ack and checked boot, and nothing else", func() {
		own := agentClient("vap-1")
		// The policy is loaded asynchronously after it is created.
		Eventually(func() error {
			_, err := own.CoreV1().Nodes().PatchStatus(ctx, "vap-2", conditionPatch(v1alpha1.ConditionRebootRequired, corev1.ConditionTrue))
			return err
		}, 30*time.Second).Should(MatchError(ContainSubstring("only the Node its pod runs on")))

		By("its own node: condition and ack are allowed")
		_, err := own.CoreV1().Nodes().PatchStatus(ctx, "vap-1", conditionPatch(v1alpha1.ConditionRebootRequired, corev1.ConditionTrue))
		Expect(err).NotTo(HaveOccurred())
		ack := nodes.AnnotationsPatch(map[string]*string{v1alpha1.AnnotationRebootAck: ptr.To("r1"), v1alpha1.AnnotationCheckedBoot: ptr.To("b1")})
		_, err = own.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, ack, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("its own node: anything else is denied")
		denied := map[string]func() error{
			"Ready condition": func() error {
				_, err := own.CoreV1().Nodes().PatchStatus(ctx, "vap-1", conditionPatch(string(corev1.NodeReady), corev1.ConditionFalse))
				return err
			},
			"cordon": func() error {
				_, err := own.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
				return err
			},
			"reboot request": func() error {
				p := nodes.AnnotationsPatch(map[string]*string{v1alpha1.AnnotationRebootRequest: ptr.To("x")})
				_, err := own.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, p, metav1.PatchOptions{})
				return err
			},
			"label": func() error {
				_, err := own.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
				return err
			},
			"delete": func() error { return own.CoreV1().Nodes().Delete(ctx, "vap-1", metav1.DeleteOptions{}) },
			// An owner reference to a missing UID makes the garbage collector delete the Node.
			"owner reference": func() error {
				p := `{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"x","uid":"00000000-0000-0000-0000-000000000001"}]}}`
				_, err := own.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, []byte(p), metav1.PatchOptions{})
				return err
			},
			"finalizer": func() error {
				_, err := own.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, []byte(`{"metadata":{"finalizers":["example.com/keep"]}}`), metav1.PatchOptions{})
				return err
			},
			"allocatable": func() error {
				_, err := own.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, []byte(`{"status":{"allocatable":{"pods":"1000"}}}`), metav1.PatchOptions{}, "status")
				return err
			},
			"addresses": func() error {
				_, err := own.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, []byte(`{"status":{"addresses":[{"type":"InternalIP","address":"10.9.9.9"}]}}`), metav1.PatchOptions{}, "status")
				return err
			},
			"volumes": func() error {
				_, err := own.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, []byte(`{"status":{"volumesInUse":["kubernetes.io/csi/x^y"]}}`), metav1.PatchOptions{}, "status")
				return err
			},
			// RBAC would let this one do anything: only the policy stops it.
			"an agent installed in another namespace, another node": func() error {
				_, err := agentClientIn("ops", "vap-2", "system:masters").CoreV1().Nodes().PatchStatus(ctx, "vap-1", conditionPatch(v1alpha1.ConditionRebootRequired, corev1.ConditionTrue))
				return err
			},
			"pods": func() error {
				_, err := own.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
				return err
			},
		}
		for what, try := range denied {
			err := try()
			Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%s: got %v", what, err)
		}
	})

	It("reserves the nodecycle.io/* Node annotations to the manager and the agent", func() {
		set := func(c kubernetes.Interface, key, value string) error {
			p := nodes.AnnotationsPatch(map[string]*string{key: &value})
			_, err := c.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, p, metav1.PatchOptions{})
			return err
		}
		alice := impersonate("alice")
		kubelet := impersonate("system:node:vap-1", "system:nodes")
		// The policy is loaded asynchronously. Each try writes a new value:
		// a value that got in before the policy was loaded would be no
		// write the next time, and be allowed.
		try := 0
		Eventually(func() error {
			try++
			return set(alice, v1alpha1.AnnotationRebootRequest, fmt.Sprintf("forged-%d", try))
		}, 30*time.Second).Should(MatchError(ContainSubstring("only nodecycle's manager may set nodecycle.io/reboot-request")))
		for what, err := range map[string]error{
			"a cordon nodecycle would lift":    set(alice, v1alpha1.AnnotationCordonedBy, "nodecycle-system/x"),
			"a BMC address from the kubelet":   set(kubelet, "nodecycle.io/bmc-address", "https://attacker.example"),
			"an agent's ack from someone else": set(alice, v1alpha1.AnnotationRebootAck, "forged"),
			"a reboot request from the agent":  set(agentClient("vap-1"), v1alpha1.AnnotationRebootRequest, "forged"),
		} {
			Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%s: got %v", what, err)
		}
		Expect(set(managerClient(), v1alpha1.AnnotationRebootRequest, "r1")).To(Succeed())
		Expect(set(alice, "example.com/other", "fine")).To(Succeed(), "other annotations are not nodecycle's business")
		Expect(set(alice, v1alpha1.AnnotationPriority, "10")).To(Succeed(), "docs/operations.md tells users to write it (N5)")
		By("another namespace's nodecycle-manager is not the manager (N5)")
		err := set(impersonate("system:serviceaccount:team-a:nodecycle-manager"), v1alpha1.AnnotationRebootRequest, "forged")
		Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		By("anyone may give up a request")
		p := nodes.AnnotationsPatch(map[string]*string{v1alpha1.AnnotationRebootRequest: nil})
		_, err = alice.CoreV1().Nodes().Patch(ctx, "vap-1", types.MergePatchType, p, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("lets anyone but the manager create only requests, in their own name, and change no spec (N2)", func() {
		// alice may create NodeCycles in the manager's namespace, as the
		// docs/operations.md tells operators to grant to those who may reboot nodes.
		Expect(env.Client.Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: "nodecycle-system", Name: "requesters"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"nodecycle.io"}, Resources: []string{"nodecycles"}, Verbs: []string{"create", "get", "update", "patch", "delete"}}},
		})).To(Succeed())
		Expect(env.Client.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "nodecycle-system", Name: "requesters"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "requesters"},
			Subjects:   []rbacv1.Subject{{Kind: "User", Name: "alice"}},
		})).To(Succeed())
		alice := crClient("alice", "system:authenticated")
		manager := crClient("system:serviceaccount:nodecycle-system:nodecycle-manager", "system:serviceaccounts", "system:serviceaccounts:nodecycle-system", "system:authenticated")
		newCycle := func(spec v1alpha1.NodeCycleSpec) *v1alpha1.NodeCycle {
			return &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: "nodecycle-system", GenerateName: "vap-1-"}, Spec: spec}
		}
		full := settings.DefaultConfig().CycleSpec("vap-1", nil)
		full.Strategies, full.Attempt = []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle}, 1
		full.PowerCycle = &v1alpha1.PowerCycleSpec{Provider: "redfish", Endpoint: "https://attacker.example", InsecureSkipVerify: true,
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: "any-secret-of-the-namespace"}}

		By("a spec of one's own is denied, as is a request with a spec around it")
		Eventually(func() error { return alice.Create(ctx, newCycle(full)) }, 30*time.Second).
			Should(MatchError(ContainSubstring("only nodecycle's manager writes a NodeCycle's spec")))
		for what, spec := range map[string]v1alpha1.NodeCycleSpec{
			"a remediation, which skips the node's checks": {NodeName: "vap-1", Remediation: "x", Request: &v1alpha1.RequestSpec{RequestedBy: "alice"}},
			"a request with strategies filled in":          {NodeName: "vap-1", Strategies: []v1alpha1.Strategy{v1alpha1.StrategyReboot}, Request: &v1alpha1.RequestSpec{RequestedBy: "alice"}},
			"a request with drain settings":                {NodeName: "vap-1", Drain: v1alpha1.DrainSpec{Timeout: v1alpha1.Duration{Duration: time.Minute}, GracePeriodSeconds: -1, EvictUnmanagedPods: true}, Request: &v1alpha1.RequestSpec{RequestedBy: "alice"}},
		} {
			Expect(alice.Create(ctx, newCycle(spec))).To(MatchError(ContainSubstring("only nodecycle's manager writes a NodeCycle's spec")), what)
		}

		By("a request in someone else's name, or in no name, is denied")
		for _, by := range []string{"bob", "system:serviceaccount:nodecycle-system:nodecycle-manager", ""} {
			err := alice.Create(ctx, newCycle(v1alpha1.NodeCycleSpec{NodeName: "vap-1", Request: &v1alpha1.RequestSpec{RequestedBy: by}}))
			Expect(err).To(MatchError(ContainSubstring("spec.request.requestedBy must be your own user name: alice")), "requestedBy %q", by)
		}
		By("control characters in a reason are refused")
		err := alice.Create(ctx, newCycle(v1alpha1.NodeCycleSpec{NodeName: "vap-1", Request: &v1alpha1.RequestSpec{RequestedBy: "alice", Reason: "ok\x1b[2J"}}))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)

		By("a request in one's own name is allowed, and its spec cannot be changed")
		req := newCycle(v1alpha1.NodeCycleSpec{NodeName: "vap-1", Request: &v1alpha1.RequestSpec{RequestedBy: "alice", Reason: "kernel CVE"}})
		Expect(alice.Create(ctx, req)).To(Succeed())
		DeferCleanup(func() error { return client.IgnoreNotFound(env.Client.Delete(ctx, req)) })
		req.Spec.Strategies, req.Spec.Attempt = []v1alpha1.Strategy{v1alpha1.StrategyReboot}, 1
		req.Spec.RebootTimeout, req.Spec.Drain = full.RebootTimeout, full.Drain
		Expect(alice.Update(ctx, req)).To(MatchError(ContainSubstring("only nodecycle's manager changes a NodeCycle's spec")))

		By("the manager fills in a request and writes full specs")
		Expect(manager.Update(ctx, req)).To(Succeed())
		own := newCycle(full)
		Expect(manager.Create(ctx, own)).To(Succeed())
		Expect(env.Client.Delete(ctx, own)).To(Succeed())
		By("another namespace's nodecycle-manager is not the manager")
		impostor := crClient("system:serviceaccount:team-a:nodecycle-manager", "system:serviceaccounts", "system:authenticated")
		Expect(env.Client.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "nodecycle-system", Name: "impostor"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "requesters"},
			Subjects:   []rbacv1.Subject{{Kind: "User", Name: "system:serviceaccount:team-a:nodecycle-manager"}},
		})).To(Succeed())
		Expect(impostor.Create(ctx, newCycle(full))).To(MatchError(ContainSubstring("only nodecycle's manager writes a NodeCycle's spec")))
	})

	It("runs the real agent under that identity", func() {
		a := newTestAgent("vap-2")
		a.client = agentClient("vap-2")
		a.start()
		defer a.stop()
		a.requireReboot()
		Eventually(conditionStatus("vap-2", v1alpha1.ConditionRebootRequired)).Should(Equal(corev1.ConditionTrue))
		node, err := env.Clientset.CoreV1().Nodes().Get(ctx, "vap-2", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string {
			n, _ := env.Clientset.CoreV1().Nodes().Get(ctx, "vap-2", metav1.GetOptions{})
			return n.Annotations[v1alpha1.AnnotationCheckedBoot]
		}).Should(Equal(node.Status.NodeInfo.BootID))
		cordonedByNodecycle(ctx, "vap-2")
		p := nodes.AnnotationsPatch(signedRequest("vap-2", "req-vap"))
		_, err = managerClient().CoreV1().Nodes().Patch(ctx, "vap-2", types.MergePatchType, p, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(a.reboots).Should(Equal(1))
		Eventually(conditionStatus("vap-2", v1alpha1.ConditionRebootRequired)).Should(Equal(corev1.ConditionFalse))
	})
})

// H10: the least-privilege variant renders an agent that is not
// privileged, holds CAP_KILL alone and reboots by signal; the namespace
// states its Pod Security level.
var _ = Describe("The least-privilege install (config/least-privilege)", func() {
	It("runs the agent with CAP_KILL alone and --reboot-method=signal", func() {
		kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
		out, err := exec.Command(kubectl, "kustomize", filepath.Join(localkube.RepoRoot(), "config", "least-privilege")).Output()
		Expect(err).NotTo(HaveOccurred())
		var ds *appsv1.DaemonSet
		var ns *corev1.Namespace
		for _, doc := range strings.Split(string(out), "\n---\n") {
			switch {
			case strings.Contains(doc, "kind: DaemonSet"):
				ds = &appsv1.DaemonSet{}
				Expect(yaml.Unmarshal([]byte(doc), ds)).To(Succeed())
			case strings.Contains(doc, "kind: Namespace"):
				ns = &corev1.Namespace{}
				Expect(yaml.Unmarshal([]byte(doc), ns)).To(Succeed())
			}
		}
		Expect(ds).NotTo(BeNil())
		c := ds.Spec.Template.Spec.Containers[0]
		Expect(c.Args).To(ContainElement("--reboot-method=signal"))
		sc := c.SecurityContext
		Expect(sc.Privileged).To(HaveValue(BeFalse()))
		Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
		Expect(sc.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))
		Expect(sc.Capabilities.Add).To(Equal([]corev1.Capability{"KILL"}))
		Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "privileged"))
	})

	// H13: the manager is not evicted by its own drain, keeps its two
	// replicas apart, and can be scheduled on a cordoned node.
	It("runs a manager that its own drain leaves alone", func() {
		kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
		out, err := exec.Command(kubectl, "kustomize", filepath.Join(localkube.RepoRoot(), "config", "default")).Output()
		Expect(err).NotTo(HaveOccurred())
		var dep *appsv1.Deployment
		for _, doc := range strings.Split(string(out), "\n---\n") {
			if strings.Contains(doc, "kind: Deployment") {
				dep = &appsv1.Deployment{}
				Expect(yaml.Unmarshal([]byte(doc), dep)).To(Succeed())
			}
		}
		Expect(dep).NotTo(BeNil())
		pod := dep.Spec.Template
		Expect(pod.Labels).To(HaveKeyWithValue(v1alpha1.LabelDrain, "skip"))
		Expect(*dep.Spec.Replicas).To(BeNumerically(">=", 2))
		Expect(pod.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution).NotTo(BeEmpty())
		Expect(pod.Spec.Tolerations).To(ContainElement(HaveField("Key", corev1.TaintNodeUnschedulable)))
	})
})

func conditionPatch(t string, s corev1.ConditionStatus) []byte {
	return nodes.ConditionPatch(nil, corev1.NodeCondition{Type: corev1.NodeConditionType(t), Status: s, Reason: "Test"}, time.Now())
}
