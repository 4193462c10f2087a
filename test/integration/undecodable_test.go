package integration

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// uncheckedLabel marks objects stored past the CRD's checks.
const uncheckedLabel = "nodecycle.test/unchecked"

// storeUnchecked creates obj as if the CRD had not checked it: the CRD's
// schema for one duration field is relaxed to a plain string while the
// object is created, then put back. Objects stored before the CRD bounded
// its durations look like this.
func storeUnchecked(ctx context.Context, crdName string, field string, obj *unstructured.Unstructured) {
	GinkgoHelper()
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	Expect(env.Client.Get(ctx, client.ObjectKey{Name: crdName}, crd)).To(Succeed())
	original := crd.DeepCopy()
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	v := versions[0].(map[string]any)
	Expect(unstructured.SetNestedField(v, map[string]any{"type": "string"},
		"schema", "openAPIV3Schema", "properties", "spec", "properties", field)).To(Succeed())
	Expect(unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions")).To(Succeed())
	Expect(env.Client.Update(ctx, crd)).To(Succeed())
	Eventually(func() error { return env.Client.Create(ctx, obj.DeepCopy()) }).Should(Succeed())
	Eventually(func() error {
		current := &unstructured.Unstructured{}
		current.SetGroupVersionKind(crd.GroupVersionKind())
		if err := env.Client.Get(ctx, client.ObjectKey{Name: crdName}, current); err != nil {
			return err
		}
		restore := original.DeepCopy()
		restore.SetResourceVersion(current.GetResourceVersion())
		return env.Client.Update(ctx, restore)
	}).Should(Succeed())
}

// H1: a stored NodeCyclePolicy whose duration does not parse used to keep
// the manager's cache from ever syncing; now it is reported on the policy
// and on the nodes it selects, and every other node is handled as usual.
var _ = Describe("An object the manager cannot use", func() {
	It("is reported, and the manager keeps working", func() {
		c := newCluster("undecodable", 2)
		c.setNode(c.node(1), func(n *corev1.Node) { n.Labels["policy"] = "bad" })
		bad := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(), "kind": "NodeCyclePolicy",
			"metadata": map[string]any{"name": "bad", "namespace": c.name, "labels": map[string]any{uncheckedLabel: "true"}},
			"spec": map[string]any{
				"nodeSelector": map[string]any{"matchLabels": map[string]any{"policy": "bad"}},
				"drainTimeout": "9999999999h",
			},
		}}
		storeUnchecked(c.ctx, "nodecyclepolicies.nodecycle.io", "drainTimeout", bad)

		for _, a := range c.agents {
			a.requireReboot()
		}
		stop := startManager(c.managerFlags()...)
		defer stop()

		By("the other node is rebooted")
		Eventually(c.phases).Should(HaveKeyWithValue(c.node(2), ContainElement(v1alpha1.PhaseSucceeded)))
		By("the bad policy says what is wrong in a Warning Event (the API server refuses its status), and its node is left alone")
		Eventually(func() []string {
			list, err := env.Clientset.CoreV1().Events(c.name).List(c.ctx, metav1.ListOptions{
				FieldSelector: fields.Set{"involvedObject.kind": "NodeCyclePolicy", "involvedObject.name": "bad"}.String()})
			Expect(err).NotTo(HaveOccurred())
			var notes []string
			for _, e := range list.Items {
				notes = append(notes, e.Reason+": "+e.Message)
			}
			return notes
		}).Should(ContainElement(And(HavePrefix(string(v1alpha1.ReasonInvalidPolicy)+": "), ContainSubstring(`spec.drainTimeout: "9999999999h" is not a duration`))))
		Eventually(func() []string { return eventReasons(c.node(1)) }).Should(ContainElement(string(v1alpha1.ReasonPolicyError)))
		Expect(c.phases()).NotTo(HaveKey(c.node(1)))
		Expect(c.getNode(c.node(1)).Spec.Unschedulable).To(BeFalse())
	})
})

// N4: a status timestamp edited by hand without microseconds made every
// list of NodeCycles undecodable (MicroTime parses only with them), so the
// manager's caches never synced. The API server now refuses it.
var _ = Describe("A NodeCycle status timestamp without microseconds", func() {
	It("is refused by the API server, and the NodeCycles stay decodable", func() {
		ctx := context.Background()
		nc := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(), "kind": "NodeCycle",
			"metadata": map[string]any{"name": "hand-edited", "namespace": "default"},
			"spec":     map[string]any{"nodeName": "hand-edited", "request": map[string]any{}},
		}}
		Expect(env.Client.Create(ctx, nc)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(env.Client.Delete(ctx, nc))).To(Succeed()) })
		status := func(startTime string) error {
			patch := []byte(`{"status":{"startTime":"` + startTime + `"}}`)
			return env.Client.Status().Patch(ctx, nc.DeepCopy(), client.RawPatch(types.MergePatchType, patch))
		}
		// The second passes format date-time but not MicroTime's parser
		// (found by FuzzStatusTimestamp).
		for _, bad := range []string{"2025-01-01T00:00:00Z", "2025-01-01T00:00:00.000000+00:70"} {
			err := status(bad)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", bad, err)
		}
		Expect(status("2025-01-01T00:00:00.000000Z")).To(Succeed())
		var list v1alpha1.NodeCycleList
		Expect(env.Client.List(ctx, &list, client.InNamespace("default"))).To(Succeed())
	})
})
