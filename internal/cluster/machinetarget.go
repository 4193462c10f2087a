package cluster

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/annotations"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// machineTarget is a workload node with its Machine.
type machineTarget struct {
	w                           Workload
	mgmt                        client.Client
	namespace, cluster, machine string
	MachineEvents
}

func (t machineTarget) Workload() Workload { return t.w }
func (t machineTarget) Machine() string    { return t.machine }

// Paused implements Target: Cluster API is paused for the Cluster or the
// Machine (clusterctl move pauses); no new operation starts then.
func (t machineTarget) Paused(ctx context.Context, updating bool) (string, error) {
	cluster, m := &clusterv1.Cluster{}, &clusterv1.Machine{}
	if err := t.mgmt.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: t.cluster}, cluster); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if err := t.mgmt.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: t.machine}, m); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if annotations.IsPaused(cluster, m) {
		return fmt.Sprintf("Cluster %s or Machine %s is paused", t.cluster, t.machine), nil
	}
	if why, ok := cluster.Annotations[v1alpha1.AnnotationPaused]; ok {
		return fmt.Sprintf("paused, Cluster %s: %s", t.cluster, why), nil
	}
	var machines clusterv1.MachineList
	if err := t.mgmt.List(ctx, &machines, client.InNamespace(t.namespace), client.MatchingLabels{clusterv1.ClusterNameLabel: t.cluster}); err != nil {
		return "", fmt.Errorf("listing Machines of Cluster %s: %w", t.cluster, err)
	}
	var md *clusterv1.MachineDeployment
	if name := m.Labels[clusterv1.MachineDeploymentNameLabel]; name != "" {
		md = &clusterv1.MachineDeployment{}
		if err := t.mgmt.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: name}, md); err != nil {
			if !apierrors.IsNotFound(err) {
				return "", fmt.Errorf("reading MachineDeployment %s: %w", name, err)
			}
			md = nil
		}
	}
	return LifecycleHold(cluster, md, machines.Items, updating), nil
}

// LifecycleHold says why Cluster API's own work on the cluster holds new
// maintenance, "" when nothing does: the Cluster rolling out (its control
// plane or a MachineDeployment: an upgrade, a template change) or
// remediating Machines, a Machine of it updating in place, or the node's
// own MachineDeployment rolling out (read directly, as the Cluster's
// summary may lag). Two replacements at once would cost more capacity than
// either plans for, and a reboot in the middle of an in-place update
// breaks it. An in-place update nodecycle does for Cluster API (updating)
// is that rollout: only a remediation holds it.
func LifecycleHold(cluster *clusterv1.Cluster, md *clusterv1.MachineDeployment, machines []clusterv1.Machine, updating bool) string {
	if c := conditions.Get(cluster, clusterv1.ClusterRemediatingCondition); c != nil && c.Status == metav1.ConditionTrue {
		return fmt.Sprintf("Cluster %s is remediating Machines (%s)", cluster.Name, oneLine(c.Message))
	}
	if updating {
		return ""
	}
	if c := conditions.Get(cluster, clusterv1.ClusterRollingOutCondition); c != nil && c.Status == metav1.ConditionTrue {
		return fmt.Sprintf("Cluster %s is rolling out (%s)", cluster.Name, oneLine(c.Message))
	}
	for i := range machines {
		m := &machines[i]
		_, annotated := m.Annotations[clusterv1.UpdateInProgressAnnotation]
		if c := conditions.Get(m, clusterv1.MachineUpdatingCondition); annotated || (c != nil && c.Status == metav1.ConditionTrue) {
			return fmt.Sprintf("Machine %s of Cluster %s is updating in place", m.Name, cluster.Name)
		}
	}
	if md != nil {
		if c := conditions.Get(md, clusterv1.MachineDeploymentRollingOutCondition); c != nil && c.Status == metav1.ConditionTrue {
			return fmt.Sprintf("MachineDeployment %s is rolling out (%s)", md.Name, oneLine(c.Message))
		}
	}
	return ""
}

// oneLine keeps a condition's message to its first line.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if s == "" {
		return "no message"
	}
	return s
}

// PauseRemediation implements Target: Cluster API's skip-remediation on the
// Machine, marked as owner's, and clusterctl's block-move (a clusterctl
// move waits until the operation ends), marked likewise. Either one set by
// someone else is left alone (and stays).
func (t machineTarget) PauseRemediation(ctx context.Context, owner string) (bool, error) {
	m := &clusterv1.Machine{}
	if err := t.mgmt.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: t.machine}, m); err != nil {
		return false, fmt.Errorf("reading Machine %s: %w", t.machine, err)
	}
	set := map[string]*string{}
	_, skipping := m.Annotations[clusterv1.MachineSkipRemediationAnnotation]
	if !skipping { // else ours from before a restart, or someone else's
		set[clusterv1.MachineSkipRemediationAnnotation], set[v1alpha1.AnnotationSkipRemediationBy] = ptr.To(""), &owner
	}
	if _, blocked := m.Annotations[v1alpha1.AnnotationBlockMove]; !blocked {
		set[v1alpha1.AnnotationBlockMove], set[v1alpha1.AnnotationBlockMoveBy] = ptr.To(""), &owner
	}
	if len(set) == 0 {
		return false, nil
	}
	if err := nodes.SetAnnotations(ctx, t.mgmt, m, set); err != nil {
		return false, fmt.Errorf("pausing remediation of Machine %s: %w", m.Name, err)
	}
	return !skipping, nil
}

// ResumeRemediation implements Target.
func (t machineTarget) ResumeRemediation(ctx context.Context, owner string) error {
	m := &clusterv1.Machine{}
	if err := t.mgmt.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: t.machine}, m); err != nil {
		return client.IgnoreNotFound(err)
	}
	return ReleaseRemediation(ctx, t.mgmt, m, owner)
}

// ReleaseRemediation removes from a Machine the skip-remediation and the
// block-move that nodecycle's markers show as owner's (the NodeCycle,
// namespace/name; "" for any NodeCycle's).
func ReleaseRemediation(ctx context.Context, mgmt client.Client, m *clusterv1.Machine, owner string) error {
	ours := func(marker string) bool {
		by, ok := m.Annotations[marker]
		return ok && (owner == "" || by == owner)
	}
	unset := map[string]*string{}
	if ours(v1alpha1.AnnotationSkipRemediationBy) {
		unset[clusterv1.MachineSkipRemediationAnnotation], unset[v1alpha1.AnnotationSkipRemediationBy] = nil, nil
	}
	if ours(v1alpha1.AnnotationBlockMoveBy) {
		unset[v1alpha1.AnnotationBlockMove], unset[v1alpha1.AnnotationBlockMoveBy] = nil, nil
	}
	if len(unset) == 0 {
		return nil
	}
	if err := nodes.SetAnnotations(ctx, mgmt, m, unset); err != nil {
		return fmt.Errorf("resuming remediation of Machine %s: %w", m.Name, client.IgnoreNotFound(err))
	}
	return nil
}
