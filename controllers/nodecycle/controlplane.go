package nodecycle

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// The control-plane rules: a control-plane node goes after the workers of
// its cluster (--control-planes-last), alone (slots.go), and only while
// every other control-plane node serves: Ready, its etcd and kube-apiserver
// static pods Ready (where the cluster runs them as pods, as kubeadm does),
// and its address an endpoint of the kubernetes Service (where the Service
// lists the control-plane nodes' addresses); a KubeadmControlPlane's
// Machine only while it reports etcd and its components healthy and
// neither rolls out nor remediates. Taking one member of a
// three-member stacked etcd down while another is unhealthy loses quorum.

// workersFirst holds a control-plane node's NodeCycle while a NodeCycle of
// a worker of its cluster is open (read from the cache).
func (r *Reconciler) workersFirst(ctx context.Context, s *scope) (bool, time.Duration, error) {
	if !s.nc.Spec.ControlPlane || !r.Config.ControlPlanesLast {
		return false, 0, nil
	}
	var list v1alpha1.NodeCycleList
	if err := r.Client.List(ctx, &list, client.InNamespace(s.nc.Namespace)); err != nil {
		return false, 0, fmt.Errorf("listing NodeCycles: %w", err)
	}
	var open []string
	for _, other := range list.Items {
		if other.Spec.ClusterName == s.nc.Spec.ClusterName && !other.Spec.ControlPlane && !other.Status.Phase.Terminal() {
			open = append(open, other.Spec.NodeName)
		}
	}
	if len(open) == 0 {
		return false, 0, nil
	}
	sort.Strings(open)
	s.waitFor(v1alpha1.ReasonWaitingForWorkers, fmt.Sprintf("Waiting: control-plane nodes go after the workers; %d workers still in or waiting for maintenance: %s", len(open), summary(open)))
	return true, slotPollInterval, nil
}

// controlPlaneHealthy holds a control-plane node's NodeCycle while another
// control-plane node of its cluster does not serve, and says which and why.
func (r *Reconciler) controlPlaneHealthy(ctx context.Context, s *scope) (bool, time.Duration, error) {
	if !s.nc.Spec.ControlPlane {
		return false, 0, nil
	}
	var cps corev1.NodeList
	if err := s.workload().Client.List(ctx, &cps, client.HasLabels{nodes.LabelControlPlane}); err != nil {
		return false, 0, fmt.Errorf("listing control-plane nodes: %w", err)
	}
	// The static pods and the Service's endpoints from the API server's
	// watch cache: a consistent read would wait for it (see podsready.go).
	cached := &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}
	var pods corev1.PodList
	if err := s.workload().Reader.List(ctx, &pods, client.InNamespace(metav1.NamespaceSystem), client.HasLabels{"component"}, cached); err != nil {
		return false, 0, fmt.Errorf("listing the control plane's pods: %w", err)
	}
	var slices discoveryv1.EndpointSliceList
	if err := s.workload().Reader.List(ctx, &slices, client.InNamespace(metav1.NamespaceDefault),
		client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}, cached); err != nil {
		return false, 0, fmt.Errorf("listing the kubernetes Service's endpoints: %w", err)
	}
	problems := controlPlaneProblems(s.node.Name, cps.Items, pods.Items, slices.Items)
	if len(problems) == 0 {
		return false, 0, nil
	}
	s.waitFor(v1alpha1.ReasonControlPlaneUnhealthy, "Waiting: another control-plane node does not serve: "+summary(problems))
	return true, gatePollInterval, nil
}

// controlPlaneProblems says what is wrong with each control-plane node but
// self, sorted. Components the cluster does not run as static pods, and a
// kubernetes Service that lists none of the control-plane nodes' addresses
// (an API server advertising another address), are not asked of anyone.
func controlPlaneProblems(self string, cps []corev1.Node, pods []corev1.Pod, slices []discoveryv1.EndpointSlice) []string {
	ready := map[string]map[string]bool{} // component -> node -> Ready
	for i := range pods {
		p := &pods[i]
		c := p.Labels["component"]
		if c != "etcd" && c != "kube-apiserver" {
			continue
		}
		if ready[c] == nil {
			ready[c] = map[string]bool{}
		}
		ready[c][p.Spec.NodeName] = ready[c][p.Spec.NodeName] || (p.DeletionTimestamp == nil && isTrue(nodes.PodReady(p)))
	}
	endpoints := map[string]bool{}
	for _, sl := range slices {
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				for _, a := range ep.Addresses {
					endpoints[a] = true
				}
			}
		}
	}
	listed := false
	for i := range cps {
		listed = listed || hasEndpoint(&cps[i], endpoints)
	}
	var problems []string
	for i := range cps {
		n := &cps[i]
		if n.Name == self {
			continue
		}
		var wrong []string
		if !nodes.IsReady(n) {
			wrong = append(wrong, "not Ready")
		}
		for _, c := range []string{"etcd", "kube-apiserver"} {
			if ready[c] != nil && !ready[c][n.Name] {
				wrong = append(wrong, c+" not Ready")
			}
		}
		if listed && !hasEndpoint(n, endpoints) {
			wrong = append(wrong, "not an endpoint of the kubernetes Service")
		}
		if len(wrong) > 0 {
			problems = append(problems, fmt.Sprintf("%s (%s)", n.Name, strings.Join(wrong, ", ")))
		}
	}
	sort.Strings(problems)
	return problems
}

func hasEndpoint(n *corev1.Node, endpoints map[string]bool) bool {
	for _, a := range n.Status.Addresses {
		if endpoints[a.Address] {
			return true
		}
	}
	return false
}

func isTrue(c *corev1.PodCondition) bool { return c != nil && c.Status == corev1.ConditionTrue }

// kubeadmControlPlaneGV is the version of KubeadmControlPlane read: its
// v1beta2 conditions say RollingOut and Remediating.
var kubeadmControlPlaneGV = schema.GroupVersion{Group: "controlplane.cluster.x-k8s.io", Version: "v1beta2"}

// kubeadmControlPlaneReady holds a control-plane Machine's NodeCycle while
// its KubeadmControlPlane does not report etcd and the control-plane
// components healthy, or rolls out, or remediates: the control plane's own
// controller is changing its Machines, or says it cannot lose one.
func (r *Reconciler) kubeadmControlPlaneReady(ctx context.Context, s *scope) (bool, time.Duration, error) {
	if !s.nc.Spec.ControlPlane || s.nc.Spec.MachineName == "" {
		return false, 0, nil
	}
	m := &clusterv1.Machine{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.nc.Namespace, Name: s.nc.Spec.MachineName}, m); err != nil {
		return false, 0, client.IgnoreNotFound(err)
	}
	ref := metav1.GetControllerOf(m)
	if ref == nil || ref.Kind != "KubeadmControlPlane" {
		return false, 0, nil
	}
	kcp := &unstructured.Unstructured{}
	kcp.SetGroupVersionKind(kubeadmControlPlaneGV.WithKind(ref.Kind))
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: ref.Name}, kcp); err != nil {
		return false, 0, fmt.Errorf("reading KubeadmControlPlane %s: %w", ref.Name, err)
	}
	if problems := kcpProblems(kcp); len(problems) > 0 {
		s.waitFor(v1alpha1.ReasonControlPlaneUnhealthy, fmt.Sprintf("Waiting: KubeadmControlPlane %s: %s", ref.Name, strings.Join(problems, "; ")))
		return true, gatePollInterval, nil
	}
	return false, 0, nil
}

// kcpProblems says which of the KubeadmControlPlane's conditions keep its
// Machines from maintenance: EtcdClusterHealthy or
// ControlPlaneComponentsHealthy not True (or not reported), RollingOut or
// Remediating True.
func kcpProblems(kcp *unstructured.Unstructured) []string {
	conds, _, _ := unstructured.NestedSlice(kcp.Object, "status", "conditions")
	status, message := map[string]string{}, map[string]string{}
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		t, _ := m["type"].(string)
		status[t], _ = m["status"].(string)
		message[t], _ = m["message"].(string)
	}
	var problems []string
	for _, c := range []struct {
		condition, want string
	}{{"EtcdClusterHealthy", "True"}, {"ControlPlaneComponentsHealthy", "True"}, {"RollingOut", "False"}, {"Remediating", "False"}} {
		got, reported := status[c.condition]
		switch {
		case !reported && c.want == "False":
		case !reported:
			problems = append(problems, c.condition+" not reported")
		case got != c.want:
			p := c.condition + " is " + got
			if msg := strings.TrimSpace(message[c.condition]); msg != "" {
				p += " (" + strings.Join(strings.Fields(msg), " ") + ")"
			}
			problems = append(problems, p)
		}
	}
	return problems
}
