package sim

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// CreateMachineDeployment creates a MachineDeployment of replicas Machines
// (rolling update, surge 1) with its provider templates.
func (c *ClusterAPIControllers) CreateMachineDeployment(ctx context.Context, namespace, cluster, name string, replicas int32, annotations map[string]string) (*clusterv1.MachineDeployment, error) {
	return c.CreateMachineDeploymentWith(ctx, namespace, cluster, name, replicas, annotations, PoolOptions{MaxSurge: 1})
}

// PoolOptions shape a MachineDeployment: its rolling update's surge and
// unavailability, and the spec of its bootstrap configuration template.
type PoolOptions struct {
	MaxSurge, MaxUnavailable int32
	BootstrapSpec            map[string]any
}

// CreateBootstrapTemplate creates a bootstrap configuration template whose
// spec.template.spec is spec.
func (c *ClusterAPIControllers) CreateBootstrapTemplate(ctx context.Context, namespace, name string, spec map[string]any) error {
	if spec == nil {
		spec = map[string]any{}
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"template": map[string]any{"spec": spec}}}}
	u.SetGroupVersionKind(bootstrapTmplGVK)
	u.SetNamespace(namespace)
	u.SetName(name)
	if err := c.Client.Create(ctx, u); err != nil {
		return fmt.Errorf("creating %s: %w", bootstrapTmplGVK.Kind, err)
	}
	return nil
}

// CreateMachineDeploymentWith creates a MachineDeployment of replicas
// Machines shaped by opts, with its provider templates.
func (c *ClusterAPIControllers) CreateMachineDeploymentWith(ctx context.Context, namespace, cluster, name string, replicas int32, annotations map[string]string, opts PoolOptions) (*clusterv1.MachineDeployment, error) {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{}}}}}
	u.SetGroupVersionKind(infraTemplateGVK)
	u.SetNamespace(namespace)
	u.SetName(name)
	if err := c.Client.Create(ctx, u); err != nil {
		return nil, fmt.Errorf("creating %s: %w", infraTemplateGVK.Kind, err)
	}
	if err := c.CreateBootstrapTemplate(ctx, namespace, name, opts.BootstrapSpec); err != nil {
		return nil, err
	}
	labels := map[string]string{"nodecycle.test/pool": name}
	md := &clusterv1.MachineDeployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations},
		Spec: clusterv1.MachineDeploymentSpec{
			ClusterName: cluster,
			Replicas:    ptr.To(replicas),
			Selector:    metav1.LabelSelector{MatchLabels: labels},
			Rollout: clusterv1.MachineDeploymentRolloutSpec{Strategy: clusterv1.MachineDeploymentRolloutStrategy{
				Type: clusterv1.RollingUpdateMachineDeploymentStrategyType,
				RollingUpdate: clusterv1.MachineDeploymentRolloutStrategyRollingUpdate{
					MaxSurge: ptr.To(intstr.FromInt32(opts.MaxSurge)), MaxUnavailable: ptr.To(intstr.FromInt32(opts.MaxUnavailable)),
				},
			}},
			Template: clusterv1.MachineTemplateSpec{
				ObjectMeta: clusterv1.ObjectMeta{Labels: labels},
				Spec: clusterv1.MachineSpec{
					ClusterName: cluster,
					Bootstrap: clusterv1.Bootstrap{ConfigRef: clusterv1.ContractVersionedObjectReference{
						APIGroup: bootstrapTmplGVK.Group, Kind: bootstrapTmplGVK.Kind, Name: name,
					}},
					InfrastructureRef: clusterv1.ContractVersionedObjectReference{
						APIGroup: infraTemplateGVK.Group, Kind: infraTemplateGVK.Kind, Name: name,
					},
				},
			},
		},
	}
	if err := c.Client.Create(ctx, md); err != nil {
		return nil, fmt.Errorf("creating MachineDeployment: %w", err)
	}
	return md, nil
}

// CreateControlPlaneMachine creates a control-plane Machine owned by a
// generic control-plane object carrying annotations. Cluster API drains and
// deletes a deleted Machine's Node only in a cluster with a control plane.
func (c *ClusterAPIControllers) CreateControlPlaneMachine(ctx context.Context, namespace, cluster, name string, annotations map[string]string) (*clusterv1.Machine, error) {
	cp := &unstructured.Unstructured{}
	cp.SetGroupVersionKind(controlPlaneGVK)
	cp.SetAnnotations(annotations)
	return c.createControlPlaneMachine(ctx, namespace, cluster, name, cp)
}

// KubeadmControlPlaneGVK is the KubeadmControlPlane a test creates with
// CreateKubeadmControlPlaneMachine; no controller runs for it: the test
// writes its conditions.
var KubeadmControlPlaneGVK = schema.GroupVersionKind{Group: "controlplane.cluster.x-k8s.io", Version: "v1beta2", Kind: "KubeadmControlPlane"}

// CreateKubeadmControlPlaneMachine creates a control-plane Machine owned by
// a KubeadmControlPlane of one replica carrying annotations.
func (c *ClusterAPIControllers) CreateKubeadmControlPlaneMachine(ctx context.Context, namespace, cluster, name string, annotations map[string]string) (*clusterv1.Machine, error) {
	cp := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"replicas": int64(1), "version": "v1.37.2",
		"machineTemplate": map[string]any{"spec": map[string]any{"infrastructureRef": map[string]any{
			"apiGroup": infraMachineGVK.Group, "kind": infraMachineGVK.Kind + "Template", "name": name}}},
	}}}
	cp.SetGroupVersionKind(KubeadmControlPlaneGVK)
	cp.SetAnnotations(annotations)
	return c.createControlPlaneMachine(ctx, namespace, cluster, name, cp)
}

// createControlPlaneMachine creates cp and a Machine it controls.
func (c *ClusterAPIControllers) createControlPlaneMachine(ctx context.Context, namespace, cluster, name string, cp *unstructured.Unstructured) (*clusterv1.Machine, error) {
	cp.SetNamespace(namespace)
	cp.SetName(name)
	if err := c.Client.Create(ctx, cp); err != nil {
		return nil, fmt.Errorf("creating control plane object: %w", err)
	}
	gvk := cp.GroupVersionKind()
	for _, gvk := range []schema.GroupVersionKind{infraMachineGVK, bootstrapGVK} {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{}}}
		u.SetGroupVersionKind(gvk)
		u.SetNamespace(namespace)
		u.SetName(name)
		if err := c.Client.Create(ctx, u); err != nil {
			return nil, fmt.Errorf("creating %s: %w", gvk.Kind, err)
		}
	}
	m := &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels: map[string]string{clusterv1.ClusterNameLabel: cluster, clusterv1.MachineControlPlaneLabel: ""},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: name, UID: cp.GetUID(), Controller: ptr.To(true),
			}},
		},
		Spec: clusterv1.MachineSpec{
			ClusterName:       cluster,
			Bootstrap:         clusterv1.Bootstrap{ConfigRef: clusterv1.ContractVersionedObjectReference{APIGroup: bootstrapGVK.Group, Kind: bootstrapGVK.Kind, Name: name}},
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infraMachineGVK.Group, Kind: infraMachineGVK.Kind, Name: name},
		},
	}
	if err := c.Client.Create(ctx, m); err != nil {
		return nil, fmt.Errorf("creating control-plane Machine: %w", err)
	}
	return m, nil
}

// ReadyMachines returns the Machines of a MachineDeployment when there are
// n, none being deleted, each with a Ready Node in the workload cluster wc;
// otherwise an error saying what is missing.
func ReadyMachines(ctx context.Context, mgmt, wc client.Client, namespace, md string, n int) ([]clusterv1.Machine, error) {
	var list clusterv1.MachineList
	if err := mgmt.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: md}); err != nil {
		return nil, err
	}
	if len(list.Items) != n {
		return nil, fmt.Errorf("MachineDeployment %s has %d Machines, want %d", md, len(list.Items), n)
	}
	for _, m := range list.Items {
		if !m.DeletionTimestamp.IsZero() || !m.Status.NodeRef.IsDefined() {
			return nil, fmt.Errorf("machine %s is being deleted or has no node yet", m.Name)
		}
		node := &corev1.Node{}
		if err := wc.Get(ctx, client.ObjectKey{Name: m.Status.NodeRef.Name}, node); err != nil {
			return nil, err
		}
		if !nodes.IsReady(node) {
			return nil, fmt.Errorf("node %s is not Ready", node.Name)
		}
	}
	return list.Items, nil
}

// RequireReboot sets RebootRequired=True on a Node and records the boot
// it was checked on, as its agent would.
func RequireReboot(ctx context.Context, c client.Client, name string) error {
	node := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return err
	}
	want := corev1.NodeCondition{Type: v1alpha1.ConditionRebootRequired, Status: corev1.ConditionTrue, Reason: string(v1alpha1.ReasonSentinelFilePresent), Message: "/var/run/reboot-required exists"}
	patch := nodes.ConditionPatch(nodes.Condition(node, v1alpha1.ConditionRebootRequired), want, time.Now())
	if err := c.Status().Patch(ctx, node, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return err
	}
	boot := nodes.BootID(node)
	return nodes.SetAnnotations(ctx, c, node, map[string]*string{v1alpha1.AnnotationCheckedBoot: &boot})
}

// MachineHealthCheck is Cluster API's check of MachineDeployment md's
// Machines: a node NotReady (or Unknown) for 1 s is unhealthy. With a
// remediation template name, nodecycle's NodeCycleRemediationTemplate of
// that name remediates it; without, Cluster API replaces the Machine.
func MachineHealthCheck(namespace, cluster, md, remediationTemplate string) *clusterv1.MachineHealthCheck {
	mhc := &clusterv1.MachineHealthCheck{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: md},
		Spec: clusterv1.MachineHealthCheckSpec{
			ClusterName: cluster,
			Selector:    metav1.LabelSelector{MatchLabels: map[string]string{clusterv1.MachineDeploymentNameLabel: md}},
			Checks: clusterv1.MachineHealthCheckChecks{UnhealthyNodeConditions: []clusterv1.UnhealthyNodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionFalse, TimeoutSeconds: ptr.To(int32(1))},
				{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, TimeoutSeconds: ptr.To(int32(1))},
			}},
		},
	}
	if remediationTemplate != "" {
		mhc.Spec.Remediation.TemplateRef = clusterv1.MachineHealthCheckRemediationTemplateReference{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "NodeCycleRemediationTemplate", Name: remediationTemplate}
	}
	return mhc
}
