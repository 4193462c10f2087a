package integration

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// The uncordon is refused only when nodecycle's own fields changed since
// the Node was read, not when anything else on the Node did.
var _ = Describe("Uncordon", func() {
	ctx := context.Background()
	read := func(name string) *corev1.Node {
		GinkgoHelper()
		var n corev1.Node
		Expect(env.Client.Get(ctx, client.ObjectKey{Name: name}, &n)).To(Succeed())
		return &n
	}
	cordonedWithRequest := func(name string) *corev1.Node {
		GinkgoHelper()
		Expect(sim.CreateNode(ctx, env.Clientset, name, nil)).To(Succeed())
		cordonedByNodecycle(ctx, name)
		Expect(nodes.SetAnnotations(ctx, env.Client, read(name), map[string]*string{v1alpha1.AnnotationRebootRequest: ptr.To("r1")})).To(Succeed())
		return read(name)
	}

	It("succeeds on a Node read before the kubelet and the agent wrote it", func() {
		stale := cordonedWithRequest("uncordon-stale")
		Expect(sim.SetNodeStatus(ctx, env.Clientset, "uncordon-stale", "boot-2", true)).To(Succeed())
		Expect(nodes.SetAnnotations(ctx, env.Client, read("uncordon-stale"), map[string]*string{v1alpha1.AnnotationCheckedBoot: ptr.To("boot-2")})).To(Succeed())
		Expect(nodes.Uncordon(ctx, env.Client, stale)).To(Succeed())
		n := read("uncordon-stale")
		Expect(n.Spec.Unschedulable).To(BeFalse())
		Expect(n.Annotations).NotTo(HaveKey(v1alpha1.AnnotationCordonedBy))
		Expect(n.Annotations).NotTo(HaveKey(v1alpha1.AnnotationRebootRequest))
		Expect(n.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationCheckedBoot, "boot-2"))
	})

	It("is a conflict when an admin took the cordon over since the read, and leaves the Node as it is", func() {
		stale := cordonedWithRequest("uncordon-taken")
		remove := []byte(`{"metadata":{"annotations":{"` + v1alpha1.AnnotationCordonedBy + `":null}}}`)
		_, err := env.Clientset.CoreV1().Nodes().Patch(ctx, "uncordon-taken", types.MergePatchType, remove, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		err = nodes.Uncordon(ctx, env.Client, stale)
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		Expect(read("uncordon-taken").Spec.Unschedulable).To(BeTrue())
	})

	It("is no conflict when an admission policy refuses it, so that it backs off instead of being retried at once", func() {
		stale := cordonedWithRequest("uncordon-denied")
		policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "deny-uncordon-denied"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: ptr.To(admissionregistrationv1.Fail),
				MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"nodes"}},
					},
				}}},
				Validations: []admissionregistrationv1.Validation{{
					Expression: `object.metadata.name != "uncordon-denied" || object.spec.?unschedulable.orValue(false)`,
					Message:    "uncordon-denied stays cordoned",
				}},
			},
		}
		binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "deny-uncordon-denied"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy.Name,
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
		}
		Expect(env.Client.Create(ctx, policy)).To(Succeed())
		Expect(env.Client.Create(ctx, binding)).To(Succeed())
		DeferCleanup(func() {
			Expect(env.Client.Delete(ctx, binding)).To(Succeed())
			Expect(env.Client.Delete(ctx, policy)).To(Succeed())
		})
		// The policy is in force once a dry-run uncordon is refused.
		uncordon := []byte(`{"spec":{"unschedulable":false}}`)
		Eventually(func() error {
			_, err := env.Clientset.CoreV1().Nodes().Patch(ctx, "uncordon-denied", types.MergePatchType, uncordon, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}).WithTimeout(30 * time.Second).Should(HaveOccurred())

		err := nodes.Uncordon(ctx, env.Client, stale)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(apierrors.IsConflict(err)).To(BeFalse(), "%v", err)
		Expect(read("uncordon-denied").Spec.Unschedulable).To(BeTrue())
	})

	It("is a conflict when the reboot request changed since the read", func() {
		stale := cordonedWithRequest("uncordon-request")
		Expect(nodes.SetAnnotations(ctx, env.Client, read("uncordon-request"), map[string]*string{v1alpha1.AnnotationRebootRequest: ptr.To("r2")})).To(Succeed())
		err := nodes.Uncordon(ctx, env.Client, stale)
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		n := read("uncordon-request")
		Expect(n.Spec.Unschedulable).To(BeTrue())
		Expect(n.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationRebootRequest, "r2"))
	})
})
