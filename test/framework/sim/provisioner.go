package sim

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func (c *ClusterAPIControllers) setupProvisioner(mgr ctrl.Manager) error {
	for _, gvk := range []schema.GroupVersionKind{infraMachineGVK, bootstrapGVK} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		if err := ctrl.NewControllerManagedBy(mgr).Named("provisioner-" + strings.ToLower(gvk.Kind)).For(u).Complete(reconcile.Func(c.provision)); err != nil {
			return err
		}
	}
	return nil
}

// MarkProvisioned writes the status of a Cluster whose infrastructure and
// control plane are up, as Cluster API's controllers would.
func MarkProvisioned(ctx context.Context, c client.Client, cluster *clusterv1.Cluster) error {
	now := metav1.Now()
	cluster.Status.Initialization = clusterv1.ClusterInitializationStatus{InfrastructureProvisioned: ptr.To(true), ControlPlaneInitialized: ptr.To(true)}
	cluster.Status.Conditions = []metav1.Condition{
		{Type: clusterv1.ClusterControlPlaneInitializedCondition, Status: metav1.ConditionTrue, Reason: "Initialized", LastTransitionTime: now},
		{Type: clusterv1.ClusterInfrastructureReadyCondition, Status: metav1.ConditionTrue, Reason: "Ready", LastTransitionTime: now},
	}
	if err := c.Status().Update(ctx, cluster); err != nil {
		return fmt.Errorf("marking Cluster provisioned: %w", err)
	}
	return nil
}

// provision plays the providers for one infrastructure machine or
// bootstrap config: once Cluster API owns it, it is made ready; an
// infrastructure machine also gets a provider ID and a Ready Node.
func (c *ClusterAPIControllers) provision(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	for _, gvk := range []schema.GroupVersionKind{infraMachineGVK, bootstrapGVK} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		if err := c.Client.Get(ctx, req.NamespacedName, u); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return reconcile.Result{}, err
		}
		if !u.GetDeletionTimestamp().IsZero() {
			continue
		}
		m := machineOf(u)
		if m == "" {
			continue // not yet adopted by its Machine
		}
		var err error
		if gvk == bootstrapGVK {
			err = c.provisionBootstrap(ctx, u)
		} else {
			err = c.provisionInfra(ctx, u, m)
		}
		if err != nil {
			return reconcile.Result{}, err
		}
	}
	return reconcile.Result{}, nil
}

func machineOf(u *unstructured.Unstructured) string {
	for _, ref := range u.GetOwnerReferences() {
		if ref.Kind == "Machine" {
			return ref.Name
		}
	}
	return ""
}

func (c *ClusterAPIControllers) provisionBootstrap(ctx context.Context, u *unstructured.Unstructured) error {
	if done, _, _ := unstructured.NestedBool(u.Object, "status", "initialization", "dataSecretCreated"); done {
		return nil
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: u.GetNamespace(), Name: u.GetName()}, Data: map[string][]byte{"value": []byte("#cloud-config\n")}}
	if err := c.Client.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_ = unstructured.SetNestedField(u.Object, true, "status", "initialization", "dataSecretCreated")
	_ = unstructured.SetNestedField(u.Object, u.GetName(), "status", "dataSecretName")
	return c.Client.Status().Update(ctx, u)
}

func (c *ClusterAPIControllers) provisionInfra(ctx context.Context, u *unstructured.Unstructured, machineName string) error {
	if done, _, _ := unstructured.NestedBool(u.Object, "status", "initialization", "provisioned"); done {
		return nil
	}
	m := &clusterv1.Machine{}
	if err := c.Client.Get(ctx, types.NamespacedName{Namespace: u.GetNamespace(), Name: machineName}, m); err != nil {
		return client.IgnoreNotFound(err)
	}
	c.mu.Lock()
	workload := c.workloads[types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.ClusterName}]
	c.mu.Unlock()
	if workload == nil {
		return fmt.Errorf("no workload cluster registered for Cluster %s/%s", m.Namespace, m.Spec.ClusterName)
	}
	providerID := "test:///" + u.GetNamespace() + "/" + u.GetName()
	if err := registerNode(ctx, workload, u.GetName(), providerID); err != nil {
		return err
	}
	if err := unstructured.SetNestedField(u.Object, providerID, "spec", "providerID"); err != nil {
		return err
	}
	if err := c.Client.Update(ctx, u); err != nil {
		return err
	}
	_ = unstructured.SetNestedField(u.Object, true, "status", "initialization", "provisioned")
	return c.Client.Status().Update(ctx, u)
}

// registerNode creates the Node a kubelet would register: Ready, with a
// boot ID and the provider ID.
func registerNode(ctx context.Context, cfg *rest.Config, name, providerID string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, NodeLabel: "true"}},
		Spec:       corev1.NodeSpec{ProviderID: providerID},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("registering node %s: %w", name, err)
	}
	if err := registerStatus(ctx, cs, name); err != nil {
		return err
	}
	return SetNodeStatus(ctx, cs, name, uuid.NewString(), true)
}
