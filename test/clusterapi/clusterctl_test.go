package clusterapi

import (
	"fmt"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	clusterctlv1 "sigs.k8s.io/cluster-api/cmd/clusterctl/api/v1alpha3"
	clusterctlclient "sigs.k8s.io/cluster-api/cmd/clusterctl/client"
	"sigs.k8s.io/cluster-api/cmd/clusterctl/client/cluster"
	"sigs.k8s.io/cluster-api/cmd/clusterctl/client/config"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/internal/release"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// The clusterctl addon provider, driven by clusterctl's own library: the
// release of `make release` in a local repository, generated with its
// variables into a namespace of the user's choice, installed with its
// inventory entry, upgraded to the next release and deleted.
var _ = Describe("The clusterctl addon provider", func() {
	It("is generated, installed, upgraded and deleted by clusterctl", func(ctx SpecContext) {
		const target = "nodecycle-addon"
		repo := GinkgoT().TempDir()
		kustomized := []byte(kubectl("kustomize", filepath.Join(localkube.RepoRoot(), "config", "release")))
		for _, v := range []string{"v0.1.0", "v0.2.0"} {
			components, metadata, err := release.Render(v, kustomized)
			Expect(err).NotTo(HaveOccurred())
			dir := filepath.Join(repo, "addon-nodecycle", v)
			Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, "addon-components.yaml"), components, 0o644)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, "metadata.yaml"), metadata, 0o644)).To(Succeed())
		}
		// The core provider this suite runs (Cluster API's controllers, in
		// process): clusterctl reads its contract from its metadata.
		core := filepath.Join(repo, "cluster-api", "v1.14.2")
		Expect(os.MkdirAll(core, 0o755)).To(Succeed())
		metadata, err := os.ReadFile(filepath.Join(sim.ModuleDir("sigs.k8s.io/cluster-api"), "metadata.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(core, "metadata.yaml"), metadata, 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(core, "core-components.yaml"), []byte("# not installed: the suite runs Cluster API in process\n"), 0o644)).To(Succeed())
		cfg := filepath.Join(repo, "clusterctl.yaml")
		Expect(os.WriteFile(cfg, fmt.Appendf(nil, `providers:
- name: nodecycle
  type: AddonProvider
  url: file://%s/addon-nodecycle/v0.2.0/addon-components.yaml
- name: cluster-api
  type: CoreProvider
  url: file://%s/cluster-api/v1.14.2/core-components.yaml
`, repo, repo), 0o644)).To(Succeed())
		kc, err := env.AdminKubeconfig()
		Expect(err).NotTo(HaveOccurred())

		By("clusterctl generate provider --addon nodecycle:v0.1.0 --target-namespace " + target + ", with NODECYCLE_NAMESPACE=" + target)
		GinkgoT().Setenv("NODECYCLE_NAMESPACE", target) // the request policy's name for the manager
		c, err := clusterctlclient.New(ctx, cfg)
		Expect(err).NotTo(HaveOccurred())
		components, err := c.GenerateProvider(ctx, "nodecycle:v0.1.0", clusterctlv1.AddonProviderType, clusterctlclient.ComponentsOptions{TargetNamespace: target})
		Expect(err).NotTo(HaveOccurred())
		Expect(components.Variables()).To(ContainElements("NODECYCLE_IMAGE", "NODECYCLE_AGENT_IMAGE", "NODECYCLE_MAX_CONCURRENT", "NODECYCLE_REPLICAS", "NODECYCLE_MEMORY_LIMIT", "NODECYCLE_IN_PLACE_UPDATES_PORT", "NODECYCLE_FREEZE", "NODECYCLE_NAMESPACE"))
		policy := false
		for _, o := range components.Objs() {
			if o.GetKind() == "ValidatingAdmissionPolicy" && o.GetName() == "nodecycle-requests" {
				conditions, _, _ := unstructured.NestedSlice(o.Object, "spec", "matchConditions")
				Expect(conditions).To(ConsistOf(HaveKeyWithValue("expression", ContainSubstring("system:serviceaccount:"+target+":nodecycle-manager"))))
				policy = true
			}
		}
		Expect(policy).To(BeTrue(), "the request policy is part of the addon")
		for _, o := range components.Objs() {
			if o.GetNamespace() != "" {
				Expect(o.GetNamespace()).To(Equal(target), "%s %s", o.GetKind(), o.GetName())
			}
		}

		By("installed, with its inventory entry")
		cc := cluster.New(cluster.Kubeconfig{Path: kc}, mustConfig(ctx, cfg))
		Expect(cc.ProviderInventory().EnsureCustomResourceDefinitions(ctx)).To(Succeed())
		coreEntry := clusterctlv1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: "capi-system", Name: "cluster-api"},
			ProviderName: "cluster-api", Type: string(clusterctlv1.CoreProviderType), Version: "v1.14.2"}
		if err = k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "capi-system"}}); err != nil && !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(cc.ProviderInventory().Create(ctx, coreEntry)).To(Succeed())
		installer := cc.ProviderInstaller()
		installer.Add(components)
		Expect(installer.Validate(ctx)).To(Succeed())
		_, err = installer.Install(ctx, cluster.InstallOptions{})
		Expect(err).NotTo(HaveOccurred())
		manager := &appsv1.Deployment{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: target, Name: "nodecycle-manager"}, manager)).To(Succeed())
		Expect(manager.Spec.Template.Spec.Containers[0].Name).To(Equal("manager"))
		Expect(manager.Spec.Template.Spec.Containers[0].Image).To(Equal("ghcr.io/nodecycle/nodecycle:v0.1.0"))
		Expect(manager.Spec.Template.Spec.Containers[0].Args).To(ContainElements("--cluster-api", "--namespace=$(POD_NAMESPACE)", "--max-concurrent=1"))
		binding := &rbacv1.ClusterRoleBinding{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: "nodecycle-manager"}, binding)).To(Succeed())
		Expect(binding.Subjects).To(ContainElement(HaveField("Namespace", target)), "the manager's service account in the target namespace")
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: target, Name: "nodecycle-manager"}, &rbacv1.RoleBinding{})).To(Succeed())
		Expect(inventory(ctx, cc)).To(HaveKeyWithValue("nodecycle", "v0.1.0"))

		By("upgraded to v0.2.0")
		var entry clusterctlv1.Provider
		list, err := cc.ProviderInventory().List(ctx)
		Expect(err).NotTo(HaveOccurred())
		for _, p := range list.Items {
			if p.ProviderName == "nodecycle" {
				entry = p
			}
		}
		Expect(cc.ProviderUpgrader().ApplyCustomPlan(ctx, cluster.UpgradeOptions{}, cluster.UpgradeItem{Provider: entry, NextVersion: "v0.2.0"})).To(Succeed())
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: target, Name: "nodecycle-manager"}, manager)).To(Succeed())
		Expect(manager.Spec.Template.Spec.Containers[0].Image).To(Equal("ghcr.io/nodecycle/nodecycle:v0.2.0"))
		Expect(inventory(ctx, cc)).To(HaveKeyWithValue("nodecycle", "v0.2.0"))

		By("deleted (its CRDs and namespace kept, as clusterctl delete does by default); the inventory forgets it")
		Expect(c.Delete(ctx, clusterctlclient.DeleteOptions{Kubeconfig: clusterctlclient.Kubeconfig{Path: kc}, AddonProviders: []string{"nodecycle"}})).To(Succeed())
		Expect(inventory(ctx, cc)).NotTo(HaveKey("nodecycle"))
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: target, Name: "nodecycle-manager"}, &appsv1.Deployment{})
		}).Should(Satisfy(apierrors.IsNotFound))
		entryObj := &unstructured.Unstructured{}
		entryObj.SetGroupVersionKind(clusterctlv1.GroupVersion.WithKind("Provider"))
		entryObj.SetNamespace(coreEntry.Namespace)
		entryObj.SetName(coreEntry.Name)
		Expect(k8s.Delete(ctx, entryObj)).To(Succeed())
	})
})

func mustConfig(ctx SpecContext, path string) config.Client {
	GinkgoHelper()
	c, err := config.New(ctx, path)
	Expect(err).NotTo(HaveOccurred())
	return c
}

// inventory is clusterctl's inventory: provider name -> version.
func inventory(ctx SpecContext, cc cluster.Client) map[string]string {
	GinkgoHelper()
	list, err := cc.ProviderInventory().List(ctx)
	Expect(err).NotTo(HaveOccurred())
	out := map[string]string{}
	for _, p := range list.Items {
		out[p.ProviderName] = p.Version
	}
	return out
}
