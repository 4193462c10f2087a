package nodecycle

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// cpNode is a control-plane node at address ip.
func cpNode(name, ip string, ready bool) corev1.Node {
	st := corev1.ConditionTrue
	if !ready {
		st = corev1.ConditionFalse
	}
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}}}
}

// staticPod is a kubeadm static pod of component on node.
func staticPod(component, node string, ready bool) corev1.Pod {
	st := corev1.ConditionTrue
	if !ready {
		st = corev1.ConditionFalse
	}
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: component + "-" + node, Labels: map[string]string{"component": component, "tier": "control-plane"}},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
}

func kubernetesEndpoints(ips ...string) []discoveryv1.EndpointSlice {
	sl := discoveryv1.EndpointSlice{}
	for _, ip := range ips {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}})
	}
	return []discoveryv1.EndpointSlice{sl}
}

// A control-plane node may go only while each other one is Ready, with
// its etcd and kube-apiserver pods Ready and its address an endpoint of
// the kubernetes Service; what the cluster does not run is not asked.
func TestControlPlaneProblems(t *testing.T) {
	cps := []corev1.Node{cpNode("cp-1", "10.0.0.1", true), cpNode("cp-2", "10.0.0.2", true), cpNode("cp-3", "10.0.0.3", true)}
	healthy := func() []corev1.Pod {
		var pods []corev1.Pod
		for _, n := range []string{"cp-1", "cp-2", "cp-3"} {
			pods = append(pods, staticPod("etcd", n, true), staticPod("kube-apiserver", n, true), staticPod("kube-scheduler", n, false))
		}
		return pods
	}
	all := kubernetesEndpoints("10.0.0.1", "10.0.0.2", "10.0.0.3")
	etcdDown := healthy()
	etcdDown[3] = staticPod("etcd", "cp-2", false)
	apiGone := healthy()[:7] // cp-3's kube-apiserver pod is not there
	notReady := append([]corev1.Node(nil), cps...)
	notReady[2] = cpNode("cp-3", "10.0.0.3", false)
	for _, tc := range []struct {
		name   string
		nodes  []corev1.Node
		pods   []corev1.Pod
		slices []discoveryv1.EndpointSlice
		want   string
	}{
		{"healthy", cps, healthy(), all, "[]"},
		{"a peer's etcd not Ready", cps, etcdDown, all, "[cp-2 (etcd not Ready)]"},
		{"only self is unhealthy", cps, append(healthy()[3:], staticPod("etcd", "cp-1", false)), all, "[]"},
		{"a peer's kube-apiserver pod gone", cps, apiGone, all, "[cp-3 (kube-apiserver not Ready)]"},
		{"a peer not Ready", notReady, healthy(), all, "[cp-3 (not Ready)]"},
		{"a peer not an endpoint", cps, healthy(), kubernetesEndpoints("10.0.0.1", "10.0.0.3"), "[cp-2 (not an endpoint of the kubernetes Service)]"},
		{"external etcd, no static pods, API servers advertise another address", cps, nil, kubernetesEndpoints("192.168.9.9"), "[]"},
		{"all wrong at once", notReady, etcdDown, kubernetesEndpoints("10.0.0.1"), "[cp-2 (etcd not Ready, not an endpoint of the kubernetes Service) cp-3 (not Ready, not an endpoint of the kubernetes Service)]"},
	} {
		if got := fmt.Sprint(controlPlaneProblems("cp-1", tc.nodes, tc.pods, tc.slices)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// --control-planes-last: a control-plane node's NodeCycle waits while a
// worker of its cluster has an open NodeCycle, and goes once it ended.
func TestControlPlanesGoAfterTheWorkers(t *testing.T) {
	h := newHarness(t)
	worker := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "worker-1-a-1"},
		Spec: v1alpha1.NodeCycleSpec{NodeName: "worker-1", BootID: "w", Attempt: 1}}
	h.create(worker)
	nc := h.open()
	nc.Spec.ControlPlane = true
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	h.settle()
	got := h.cycle()
	if got.Status.Phase != v1alpha1.PhasePending || got.Status.Message != "Waiting: control-plane nodes go after the workers; 1 workers still in or waiting for maintenance: worker-1" {
		t.Fatalf("phase %s: %s", got.Status.Phase, got.Status.Message)
	}
	if c := nodes.Condition(h.node(), v1alpha1.ConditionMaintenancePlanned); c == nil || c.Reason != string(v1alpha1.ReasonWaitingForWorkers) {
		t.Fatalf("MaintenancePlanned %+v", c)
	}
	worker.Status.Phase = v1alpha1.PhaseSucceeded
	if err := h.c.Status().Update(h.ctx, worker); err != nil {
		t.Fatal(err)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
}

// A KubeadmControlPlane lets its Machines go only while etcd and its
// components are healthy and it neither rolls out nor remediates.
func TestKubeadmControlPlaneProblems(t *testing.T) {
	kcp := func(conds ...map[string]any) *unstructured.Unstructured {
		list := make([]any, len(conds))
		for i, c := range conds {
			list[i] = c
		}
		return &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"conditions": list}}}
	}
	cond := func(t, st, msg string) map[string]any { return map[string]any{"type": t, "status": st, "message": msg} }
	healthy := []map[string]any{cond("EtcdClusterHealthy", "True", ""), cond("ControlPlaneComponentsHealthy", "True", ""),
		cond("RollingOut", "False", ""), cond("Remediating", "False", "")}
	for _, tc := range []struct {
		name string
		kcp  *unstructured.Unstructured
		want string
	}{
		{"healthy", kcp(healthy...), "[]"},
		{"healthy, never rolled out", kcp(healthy[:2]...), "[]"},
		{"no status yet", kcp(), "[EtcdClusterHealthy not reported ControlPlaneComponentsHealthy not reported]"},
		{"etcd unhealthy", kcp(cond("EtcdClusterHealthy", "False", "* Machine cp-2:\n  * EtcdMemberHealthy: etcd member is unhealthy"), healthy[1]),
			"[EtcdClusterHealthy is False (* Machine cp-2: * EtcdMemberHealthy: etcd member is unhealthy)]"},
		{"rolling out and remediating", kcp(healthy[0], healthy[1], cond("RollingOut", "True", "Rolling out 1 not up-to-date replicas"), cond("Remediating", "True", "")),
			"[RollingOut is True (Rolling out 1 not up-to-date replicas) Remediating is True]"},
	} {
		if got := fmt.Sprint(kcpProblems(tc.kcp)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
