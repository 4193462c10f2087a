package cluster

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/internal/drain"
)

// DrainRules implements Target: how the drain of a Machine's node treats
// each pod, as Cluster API's own drain does (one semantic whichever
// evicts): the pod label cluster.x-k8s.io/drain (skip, wait-completed)
// first, then the first MachineDrainRule, by name, of the Machine's
// namespace that selects the Machine (its labels and its Cluster's) and the
// pod (its labels and its Namespace's); otherwise Drain, order 0. nil when
// the Machine is gone.
func (t machineTarget) DrainRules(ctx context.Context) (func(*corev1.Pod) drain.Rule, error) {
	m, c := &clusterv1.Machine{}, &clusterv1.Cluster{}
	if err := t.mgmt.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: t.machine}, m); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if err := t.mgmt.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: m.Spec.ClusterName}, c); err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	var list clusterv1.MachineDrainRuleList
	if err := t.mgmt.List(ctx, &list, client.InNamespace(t.namespace)); err != nil {
		return nil, fmt.Errorf("listing MachineDrainRules: %w", err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	var rules []clusterv1.MachineDrainRule
	needNamespaces := false
	for _, rule := range list.Items {
		if appliesToMachine(rule, m, c) {
			rules = append(rules, rule)
			for _, p := range rule.Spec.Pods {
				needNamespaces = needNamespaces || p.NamespaceSelector != nil
			}
		}
	}
	nsLabels := map[string]labels.Set{}
	if needNamespaces {
		var nss corev1.NamespaceList
		if err := t.w.Reader.List(ctx, &nss); err != nil {
			return nil, fmt.Errorf("listing the workload cluster's Namespaces for the MachineDrainRules: %w", err)
		}
		for _, ns := range nss.Items {
			nsLabels[ns.Name] = ns.Labels
		}
	}
	return func(pod *corev1.Pod) drain.Rule {
		switch pod.Labels[clusterv1.PodDrainLabel] {
		case "skip":
			return drain.Rule{Behavior: drain.BehaviorSkip, Source: "label " + clusterv1.PodDrainLabel}
		case "wait-completed":
			return drain.Rule{Behavior: drain.BehaviorWaitCompleted, Source: "label " + clusterv1.PodDrainLabel}
		}
		for _, rule := range rules {
			if appliesToPod(rule, pod, nsLabels[pod.Namespace]) {
				r := drain.Rule{Behavior: string(rule.Spec.Drain.Behavior), Source: "MachineDrainRule " + rule.Name}
				if rule.Spec.Drain.Order != nil {
					r.Order = *rule.Spec.Drain.Order
				}
				if r.Behavior == "" {
					r.Behavior = drain.BehaviorDrain
				}
				return r
			}
		}
		return drain.Rule{Behavior: drain.BehaviorDrain}
	}, nil
}

// appliesToMachine: no machines selector selects every Machine; several
// are ORed; within one, selector and clusterSelector are ANDed.
func appliesToMachine(rule clusterv1.MachineDrainRule, m *clusterv1.Machine, c *clusterv1.Cluster) bool {
	if len(rule.Spec.Machines) == 0 {
		return true
	}
	for _, sel := range rule.Spec.Machines {
		if matches(sel.Selector, m.Labels) && matches(sel.ClusterSelector, c.Labels) {
			return true
		}
	}
	return false
}

// appliesToPod: as appliesToMachine, with the pod and its Namespace.
func appliesToPod(rule clusterv1.MachineDrainRule, pod *corev1.Pod, nsLabels labels.Set) bool {
	if len(rule.Spec.Pods) == 0 {
		return true
	}
	for _, sel := range rule.Spec.Pods {
		if matches(sel.Selector, pod.Labels) && matches(sel.NamespaceSelector, nsLabels) {
			return true
		}
	}
	return false
}

// matches: an absent or empty selector selects everything; one that does
// not parse (the CRD validates them) selects nothing.
func matches(sel *metav1.LabelSelector, set map[string]string) bool {
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(set))
}
