package clusterapi

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

var _ = Describe("Installation with kubectl apply -k config/clusterapi", func() {
	It("carries the rendered agent manifests of config/workload and config/workload-least-privilege", func() {
		for dir, file := range map[string]string{"workload": "nodecycle-agent.yaml", "workload-least-privilege": "nodecycle-agent-least-privilege.yaml"} {
			rendered := kubectl("kustomize", filepath.Join(localkube.RepoRoot(), "config", dir))
			inTree, err := os.ReadFile(filepath.Join(localkube.RepoRoot(), "controllers", "agentinstall", file))
			Expect(err).NotTo(HaveOccurred())
			Expect(string(inTree)).To(Equal(rendered), "controllers/agentinstall/%s is stale: run make generate", file)
		}
	})

	// H12: in Cluster API mode the manager's ClusterRole is ../rbac's
	// without the rights on workload objects, which it uses only through
	// each Cluster's kubeconfig. A right added to the markers shows here.
	It("grants in the management cluster the generated rights minus the workload ones", func() {
		rendered := kubectl("kustomize", filepath.Join(localkube.RepoRoot(), "config", "clusterapi"))
		generated, err := os.ReadFile(filepath.Join(localkube.RepoRoot(), "config", "rbac", "role.yaml"))
		Expect(err).NotTo(HaveOccurred())
		role := func(docs string) []rbacv1.PolicyRule {
			GinkgoHelper()
			for _, doc := range strings.Split(docs, "\n---\n") {
				r := &rbacv1.ClusterRole{}
				if yaml.Unmarshal([]byte(doc), r) == nil && r.Kind == "ClusterRole" && r.Name == "nodecycle-manager" {
					return r.Rules
				}
			}
			Fail("no ClusterRole nodecycle-manager")
			return nil
		}
		workload := map[string]bool{"nodes": true, "nodes/status": true, "pods": true, "pods/eviction": true, "poddisruptionbudgets": true,
			"evictionrequests": true, "evictions": true, "endpointslices": true}
		var want []rbacv1.PolicyRule
		for _, r := range role(string(generated)) {
			// A generated rule may join workload and management resources
			// of the same verbs (namespaces and pods): only the former stay.
			r.Resources = slices.DeleteFunc(r.Resources, func(res string) bool { return workload[res] })
			if len(r.Resources) > 0 {
				want = append(want, r)
			}
		}
		Expect(role(rendered)).To(Equal(want))
	})

	It("installs the manager in Cluster API mode, which installs the agent in every Cluster labelled nodecycle.io/agent=enabled, in any namespace", func(ctx SpecContext) {
		kc, err := env.AdminKubeconfig()
		Expect(err).NotTo(HaveOccurred())
		out := kubectl("--kubeconfig", kc, "apply", "--server-side", "--force-conflicts", "-k", filepath.Join(localkube.RepoRoot(), "config", "clusterapi"))
		Expect(out).To(ContainSubstring("deployment.apps/nodecycle-manager serverside-applied"))
		Expect(out).NotTo(ContainSubstring("daemonset"), "no agent in the management cluster itself")
		manager := &appsv1.Deployment{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "nodecycle-system", Name: "nodecycle-manager"}, manager)).To(Succeed())
		Expect(manager.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--cluster-api"))

		const ns = "team-a" // not the manager's namespace
		workload, err := localkube.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(workload.Stop)
		DeferCleanup(func(ctx SpecContext) error { return capi.DeleteCluster(ctx, ns, "labelled") })
		wc, err := client.New(workload.Config, client.Options{})
		Expect(err).NotTo(HaveOccurred())
		cluster, err := capi.CreateCluster(ctx, ns, "labelled", workload.Config)
		Expect(err).NotTo(HaveOccurred())
		cluster.Labels = map[string]string{v1alpha1.LabelAgent: "enabled"}
		Expect(k8s.Update(ctx, cluster)).To(Succeed())

		asManager := rest.CopyConfig(env.Config)
		asManager.Impersonate = rest.ImpersonationConfig{
			UserName: "system:serviceaccount:nodecycle-system:nodecycle-manager",
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:nodecycle-system", "system:authenticated"},
		}
		may := func(verb, resource, namespace string) bool {
			GinkgoHelper()
			review, reviewErr := env.Clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: asManager.Impersonate.UserName, Groups: asManager.Impersonate.Groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: verb, Resource: resource,
					Group: map[string]string{"secrets": "", "clusters": "cluster.x-k8s.io", "machines": "cluster.x-k8s.io"}[resource]},
			}}, metav1.CreateOptions{})
			Expect(reviewErr).NotTo(HaveOccurred())
			return review.Status.Allowed
		}

		By("H12: no Secret, Cluster patch or Machine delete in a namespace that has not opted in")
		for _, right := range [][2]string{{"get", "secrets"}, {"patch", "clusters"}, {"delete", "machines"}} {
			Expect(may(right[0], right[1], ns)).To(BeFalse(), "%s %s before the namespace opted in", right[0], right[1])
		}
		Expect(may("list", "clusters", ns)).To(BeTrue(), "Clusters are read everywhere")
		By("the namespace opts in, as docs/clusterapi.md says")
		Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nodecycle-manager"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "nodecycle-manager-namespace"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "nodecycle-system", Name: "nodecycle-manager"}},
		})).To(Succeed())
		Expect(may("get", "secrets", ns)).To(BeTrue())
		Expect(may("get", "secrets", "team-b")).To(BeFalse(), "another tenant's Secrets")

		By("the manager, as its service account with the installed RBAC, installs the agent and reboots a node")
		stop, _, err := framework.StartManager(asManager, GinkgoWriter, "--cluster-api", "--agent-pod-selector=", "--leader-elect=true", "--leader-election-namespace=nodecycle-system",
			"--agent-image=registry.example.com/nodecycle:test")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(stop)
		Eventually(func(g Gomega) {
			ds := &appsv1.DaemonSet{}
			g.Expect(wc.Get(ctx, client.ObjectKey{Namespace: "nodecycle-system", Name: "nodecycle-agent"}, ds)).To(Succeed())
			g.Expect(ds.Spec.Template.Spec.Containers[0].Image).To(Equal("registry.example.com/nodecycle:test"))
			g.Expect(ds.ManagedFields).To(ContainElement(HaveField("Manager", "nodecycle-manager")))
			g.Expect(wc.Get(ctx, client.ObjectKey{Name: "nodecycle-agent-own-node"}, &admissionregistrationv1.ValidatingAdmissionPolicy{})).To(Succeed())
		}).Should(Succeed())

		By("nodecycle.io/agent=least-privilege switches the Cluster's agent to the one that reboots by signal with CAP_KILL alone (H10)")
		agentContainer := func(g Gomega) corev1.Container {
			ds := &appsv1.DaemonSet{}
			g.Expect(wc.Get(ctx, client.ObjectKey{Namespace: "nodecycle-system", Name: "nodecycle-agent"}, ds)).To(Succeed())
			return ds.Spec.Template.Spec.Containers[0]
		}
		setAgentLabel := func(value string) {
			GinkgoHelper()
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(cluster), cluster)).To(Succeed())
			cluster.Labels[v1alpha1.LabelAgent] = value
			Expect(k8s.Update(ctx, cluster)).To(Succeed())
		}
		setAgentLabel("least-privilege")
		Eventually(func(g Gomega) {
			c := agentContainer(g)
			g.Expect(c.Args).To(ContainElement("--reboot-method=signal"))
			g.Expect(c.SecurityContext.Privileged).To(HaveValue(BeFalse()))
			g.Expect(c.SecurityContext.Capabilities.Add).To(ConsistOf(corev1.Capability("KILL")))
		}).Should(Succeed())
		setAgentLabel("privileged")
		Eventually(func() []string { return eventsOn(ctx, ns, "Cluster", "labelled") }).Should(ContainElement(ContainSubstring(`Label nodecycle.io/agent="privileged" names no agent`)))
		Consistently(func(g Gomega) { g.Expect(agentContainer(g).Args).To(ContainElement("--reboot-method=signal")) }, 2*time.Second).Should(Succeed(), "a bad value installs nothing")
		setAgentLabel("enabled")
		Eventually(func(g Gomega) {
			c := agentContainer(g)
			g.Expect(c.Args).NotTo(ContainElement("--reboot-method=signal"))
			g.Expect(c.SecurityContext.Privileged).To(HaveValue(BeTrue()))
		}).Should(Succeed())

		_, err = capi.CreateMachineDeployment(ctx, ns, "labelled", "labelled-pool", 1, map[string]string{v1alpha1.AnnotationStrategy: "reboot"})
		Expect(err).NotTo(HaveOccurred())
		m := readyMachines(ctx, wc, ns, "labelled-pool", 1)[0]
		startKubelet(workload.Config, time.Second)
		requireReboot(ctx, wc, m.Status.NodeRef.Name)
		Eventually(func(g Gomega) {
			cycles := cyclesIn(ctx, ns)
			g.Expect(cycles).To(HaveLen(1))
			g.Expect(cycles[0].Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), cycles[0].Status.Message)
		}).Should(Succeed())
		Eventually(func() []string { return eventsOn(ctx, ns, "Machine", m.Name) }).Should(ContainElement(HavePrefix("RemediationPaused: ")))

		By("Leases only in its own namespace (H12): it cannot forge node heartbeats or take other leader leases")
		sar := func(namespace string) bool {
			GinkgoHelper()
			r, err := env.Clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: asManager.Impersonate.UserName, Groups: asManager.Impersonate.Groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: "update", Group: "coordination.k8s.io", Resource: "leases"},
			}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			return r.Status.Allowed
		}
		Expect(sar("nodecycle-system")).To(BeTrue(), "its leader election Lease")
		Expect(sar("kube-node-lease")).To(BeFalse(), "node heartbeats")
		Expect(sar("kube-system")).To(BeFalse(), "other leader elections")

		By("no rights on the management cluster's own Nodes and Pods (H12): it rebooted the node without them")
		can := func(verb, resource, sub string) bool {
			GinkgoHelper()
			r, err := env.Clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: asManager.Impersonate.UserName, Groups: asManager.Impersonate.Groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "default", Verb: verb, Resource: resource, Subresource: sub},
			}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			return r.Status.Allowed
		}
		Expect(can("patch", "nodes", "")).To(BeFalse())
		Expect(can("create", "pods", "eviction")).To(BeFalse())
		Expect(can("list", "pods", "")).To(BeFalse())
	})
})
