package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/kubeconfig"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// grow adds clusters up to n and opts in the first optedIn.
func (f *fleet) grow(ctx context.Context, n, optedIn int) error {
	errs := make(chan error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				var err error
				if i >= f.clusters {
					err = f.addCluster(ctx, i, i < optedIn)
				} else if i >= f.optedIn && i < optedIn {
					err = f.optIn(ctx, i)
				}
				if err != nil {
					errs <- fmt.Errorf("cluster %s: %w", f.cluster(i), err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	f.clusters, f.optedIn = n, optedIn
	return errors.Join(all...)
}

func (f *fleet) optIn(ctx context.Context, i int) error {
	md := &clusterv1.MachineDeployment{}
	if err := f.c.Get(ctx, client.ObjectKey{Namespace: f.namespace(i), Name: f.cluster(i) + "-pool"}, md); err != nil {
		return err
	}
	patch := client.MergeFrom(md.DeepCopy())
	md.Annotations = map[string]string{v1alpha1.AnnotationStrategy: "reboot"}
	return f.c.Patch(ctx, md, patch)
}

// addCluster writes cluster i as Cluster API leaves a provisioned cluster:
// the Cluster with its kubeconfig Secret, a MachineDeployment, its
// Machines with their nodeRefs, and their Nodes in the workload cluster.
func (f *fleet) addCluster(ctx context.Context, i int, optedIn bool) error {
	ns, name := f.namespace(i), f.cluster(i)
	if err := f.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	cluster := &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		// Detected nodes' NodeCycles wait: the clusters share API servers.
		Annotations: map[string]string{v1alpha1.AnnotationPaused: "benchmark: detection only"},
	}, Spec: clusterv1.ClusterSpec{InfrastructureRef: clusterv1.ContractVersionedObjectReference{
		APIGroup: "infrastructure.cluster.x-k8s.io", Kind: "GenericInfrastructureCluster", Name: name,
	}}}
	if err := f.c.Create(ctx, cluster); err != nil {
		return err
	}
	kc, err := f.server(i).views.Kubeconfig(name)
	if err != nil {
		return err
	}
	if err := f.c.Create(ctx, kubeconfig.GenerateSecret(cluster, kc)); err != nil {
		return err
	}
	if err := sim.MarkProvisioned(ctx, f.c, cluster); err != nil {
		return err
	}
	now := metav1.Now()
	pool := name + "-pool"
	labels := map[string]string{clusterv1.ClusterNameLabel: name, clusterv1.MachineDeploymentNameLabel: pool}
	template := clusterv1.MachineSpec{
		ClusterName: name,
		Bootstrap:   clusterv1.Bootstrap{DataSecretName: ptr.To(pool + "-bootstrap")},
		InfrastructureRef: clusterv1.ContractVersionedObjectReference{
			APIGroup: "infrastructure.cluster.x-k8s.io", Kind: "GenericInfrastructureMachineTemplate", Name: pool,
		},
		Version: "v1.37.2",
	}
	md := &clusterv1.MachineDeployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pool},
		Spec: clusterv1.MachineDeploymentSpec{
			ClusterName: name, Replicas: ptr.To(int32(f.nodes)),
			Selector: metav1.LabelSelector{MatchLabels: labels},
			Rollout: clusterv1.MachineDeploymentRolloutSpec{Strategy: clusterv1.MachineDeploymentRolloutStrategy{
				Type: clusterv1.RollingUpdateMachineDeploymentStrategyType,
				RollingUpdate: clusterv1.MachineDeploymentRolloutStrategyRollingUpdate{
					MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0)),
				},
			}},
			Template: clusterv1.MachineTemplateSpec{ObjectMeta: clusterv1.ObjectMeta{Labels: labels}, Spec: template},
		},
	}
	if optedIn {
		md.Annotations = map[string]string{v1alpha1.AnnotationStrategy: "reboot"}
	}
	if err := f.c.Create(ctx, md); err != nil {
		return err
	}
	for j := range f.nodes {
		if err := f.addMachine(ctx, i, j, labels, template, now); err != nil {
			return err
		}
	}
	return nil
}

func (f *fleet) addMachine(ctx context.Context, i, j int, labels map[string]string, template clusterv1.MachineSpec, now metav1.Time) error {
	ns, cluster, nodeName := f.namespace(i), f.cluster(i), f.node(i, j)
	info := corev1.NodeSystemInfo{
		MachineID: fmt.Sprintf("%032x", i*1000+j), SystemUUID: fmt.Sprintf("%08x-0000-0000-0000-%012x", i, j),
		BootID: fmt.Sprintf("%08x-0000-0000-0000-%012x", j, i), KernelVersion: "6.1.0-27-amd64", OSImage: "Debian GNU/Linux 12 (bookworm)",
		ContainerRuntimeVersion: "containerd://1.6.20", KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64",
	}
	providerID := fmt.Sprintf("fleet://%s/%s", cluster, nodeName)
	m := &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-pool-%02d", cluster, j), Labels: labels},
		Spec:       *template.DeepCopy(),
	}
	m.Spec.ProviderID = providerID
	if err := f.c.Create(ctx, m); err != nil {
		return err
	}
	m.Status = clusterv1.MachineStatus{
		Initialization: clusterv1.MachineInitializationStatus{InfrastructureProvisioned: ptr.To(true), BootstrapDataSecretCreated: ptr.To(true)},
		NodeRef:        clusterv1.MachineNodeReference{Name: nodeName},
		NodeInfo:       &info,
		Phase:          string(clusterv1.MachinePhaseRunning),
		Addresses:      clusterv1.MachineAddresses{{Type: clusterv1.MachineInternalIP, Address: fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j)}},
	}
	for _, t := range []string{clusterv1.AvailableCondition, clusterv1.ReadyCondition, clusterv1.MachineUpToDateCondition,
		clusterv1.MachineBootstrapConfigReadyCondition, clusterv1.MachineInfrastructureReadyCondition, clusterv1.MachineNodeReadyCondition, clusterv1.MachineNodeHealthyCondition} {
		m.Status.Conditions = append(m.Status.Conditions, metav1.Condition{Type: t, Status: metav1.ConditionTrue, Reason: "Fine", LastTransitionTime: now})
	}
	if err := f.c.Status().Update(ctx, m); err != nil {
		return err
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName,
			Labels: map[string]string{framework.FleetClusterLabel: cluster, corev1.LabelHostname: nodeName, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"},
			Annotations: map[string]string{
				clusterv1.ClusterNameAnnotation: cluster, clusterv1.ClusterNamespaceAnnotation: ns, clusterv1.MachineAnnotation: m.Name,
				clusterv1.OwnerKindAnnotation: "MachineSet", clusterv1.OwnerNameAnnotation: cluster + "-pool",
				v1alpha1.AnnotationCheckedBoot: info.BootID, // the agent's check of this boot
			},
		},
		Spec: corev1.NodeSpec{ProviderID: providerID, PodCIDR: fmt.Sprintf("10.244.%d.0/24", j), PodCIDRs: []string{fmt.Sprintf("10.244.%d.0/24", j)}},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("7800m"), corev1.ResourceMemory: resource.MustParse("31Gi"), corev1.ResourcePods: resource.MustParse("110")},
			NodeInfo:    info,
			Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: m.Status.Addresses[0].Address}, {Type: corev1.NodeHostName, Address: nodeName}},
		},
	}
	for _, c := range []struct {
		t      corev1.NodeConditionType
		status corev1.ConditionStatus
	}{{corev1.NodeReady, corev1.ConditionTrue}, {corev1.NodeMemoryPressure, corev1.ConditionFalse}, {corev1.NodeDiskPressure, corev1.ConditionFalse},
		{corev1.NodePIDPressure, corev1.ConditionFalse}, {v1alpha1.ConditionRebootRequired, corev1.ConditionFalse}} {
		node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{Type: c.t, Status: c.status, Reason: "Fine", LastHeartbeatTime: now, LastTransitionTime: now})
	}
	return client.IgnoreAlreadyExists(f.server(i).c.Create(ctx, node))
}

// reset deletes the NodeCycles and clears RebootRequired where it was set.
func (f *fleet) reset(ctx context.Context) error {
	for i := 0; i < f.clusters; i += 100 {
		if err := f.c.DeleteAllOf(ctx, &v1alpha1.NodeCycle{}, client.InNamespace(f.namespace(i))); err != nil {
			return err
		}
	}
	var errs []error
	for _, s := range f.servers {
		var list corev1.NodeList
		if err := s.c.List(ctx, &list); err != nil {
			return err
		}
		for _, n := range list.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == v1alpha1.ConditionRebootRequired && c.Status == corev1.ConditionTrue {
					errs = append(errs, setRebootRequired(ctx, s.c, n.Name, corev1.ConditionFalse))
				}
			}
		}
	}
	return errors.Join(errs...)
}
