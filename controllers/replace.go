package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// The replace strategy: the cordoned node's Machine is deleted (Cluster API
// drains it, honouring its pre-drain and pre-terminate hooks and its
// nodeDrainTimeout), and the NodeCycle holds the cluster's slot until the
// Machine is gone and a Machine its MachineSet created since then has a
// Ready Node. There is no uncordon: the node goes away.

// deleteMachine deletes the NodeCycle's Machine, once.
func (r *NodeCycleReconciler) deleteMachine(ctx context.Context, s *step) (reconcile.Result, error) {
	name := s.nc.Spec.MachineName // admit made sure there is one
	m := &clusterv1.Machine{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.nc.Namespace, Name: name}, m)
	if apierrors.IsNotFound(err) {
		// Deleted before a restart, or by someone else: wait for the replacement.
		r.moveTo(s, v1alpha1.PhaseWaitingForReplacement, fmt.Sprintf("Machine %s is gone; waiting for a replacement from MachineSet %s", name, s.nc.Status.MachineSet))
		return reconcile.Result{Requeue: true}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	ms := metav1.GetControllerOf(m)
	if ms == nil || ms.Kind != "MachineSet" {
		r.fail(s, "NoMachineSet", fmt.Sprintf("Machine %s is not controlled by a MachineSet; nothing would replace it, so it is not deleted", name))
		return reconcile.Result{Requeue: true}, nil
	}
	if s.nc.Status.MachineSet == "" {
		// Saved before the delete, so a restart knows whose replacement to wait for.
		s.nc.Status.MachineSet = ms.Name
		return reconcile.Result{Requeue: true}, nil
	}
	if m.DeletionTimestamp.IsZero() {
		if err := r.Client.Delete(ctx, m, ctrl.Preconditions{UID: &m.UID}); ctrl.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, fmt.Errorf("deleting Machine %s: %w", name, err)
		}
		s.event(corev1.EventTypeNormal, "MachineDeleted", "Machine %s deleted; Cluster API drains it and MachineSet %s replaces it", name, ms.Name)
	}
	r.moveTo(s, v1alpha1.PhaseWaitingForReplacement, fmt.Sprintf("Waiting for Cluster API to drain and delete Machine %s", name))
	return reconcile.Result{Requeue: true}, nil
}

// waitForReplacement ends the NodeCycle once the old Machine is gone and a
// new Machine of its MachineSet has a Ready Node, or fails it at the
// replace timeout.
func (r *NodeCycleReconciler) waitForReplacement(ctx context.Context, s *step) (reconcile.Result, error) {
	st := &s.nc.Status
	old := s.nc.Spec.MachineName
	message, done, err := r.replacementState(ctx, s)
	if err != nil {
		return reconcile.Result{}, err
	}
	if done {
		r.finish(s, v1alpha1.PhaseSucceeded, "", fmt.Sprintf("Machine %s replaced by Machine %s, whose node is Ready", old, st.ReplacementMachine))
		return reconcile.Result{}, nil
	}
	waited := s.now.Sub(st.PhaseStartTime.Time)
	timeout := r.Config.ReplaceTimeout
	if s.nc.Spec.ReplaceTimeout != nil {
		timeout = s.nc.Spec.ReplaceTimeout.Duration
	}
	if waited >= timeout {
		// Nothing to uncordon: the old node is being deleted by Cluster API.
		r.finish(s, v1alpha1.PhaseFailed, "ReplaceTimeout", fmt.Sprintf("Replacement not done within %s: %s", timeout, message))
		return reconcile.Result{}, nil
	}
	st.Message = message
	return reconcile.Result{RequeueAfter: min(replacePollInterval, timeout-waited)}, nil
}

// replacementState says where the replacement stands.
func (r *NodeCycleReconciler) replacementState(ctx context.Context, s *step) (message string, done bool, err error) {
	st := &s.nc.Status
	old := &clusterv1.Machine{}
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: s.nc.Namespace, Name: s.nc.Spec.MachineName}, old)
	if err == nil {
		return fmt.Sprintf("Waiting for Cluster API to drain and delete Machine %s", old.Name), false, nil
	}
	if !apierrors.IsNotFound(err) {
		return "", false, err
	}
	var list clusterv1.MachineList
	if err := r.Client.List(ctx, &list, ctrl.InNamespace(s.nc.Namespace), ctrl.MatchingLabels{clusterv1.ClusterNameLabel: s.nc.Spec.ClusterName}); err != nil {
		return "", false, fmt.Errorf("listing Machines: %w", err)
	}
	since := st.StartTime.Time.Truncate(1e9) // creation timestamps have whole seconds
	message = fmt.Sprintf("Machine %s is gone; waiting for MachineSet %s to create its replacement", s.nc.Spec.MachineName, st.MachineSet)
	for i := range list.Items {
		m := &list.Items[i]
		if owner := metav1.GetControllerOf(m); owner == nil || owner.Name != st.MachineSet || m.CreationTimestamp.Time.Before(since) || !m.DeletionTimestamp.IsZero() {
			continue
		}
		if !m.Status.NodeRef.IsDefined() {
			message = fmt.Sprintf("Replacement Machine %s created; waiting for its Node", m.Name)
			continue
		}
		node := &corev1.Node{}
		if err := s.w.Client.Get(ctx, types.NamespacedName{Name: m.Status.NodeRef.Name}, node); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return "", false, err
		}
		if !nodes.IsReady(node) {
			message = fmt.Sprintf("Replacement Machine %s has Node %s; waiting for it to be Ready", m.Name, node.Name)
			continue
		}
		st.ReplacementMachine = m.Name
		return "", true, nil
	}
	return message, false, nil
}

// pauseRemediation puts Cluster API's skip-remediation on the NodeCycle's
// Machine, so a MachineHealthCheck does not replace a node that is only
// rebooting. nodecycle marks it as its own; one set by someone else is left
// alone (and stays).
func (r *NodeCycleReconciler) pauseRemediation(ctx context.Context, s *step) error {
	if s.nc.Spec.MachineName == "" {
		return nil
	}
	m := &clusterv1.Machine{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.nc.Namespace, Name: s.nc.Spec.MachineName}, m); err != nil {
		return fmt.Errorf("reading Machine %s: %w", s.nc.Spec.MachineName, err)
	}
	owner := s.nc.Namespace + "/" + s.nc.Name
	_, skipping := m.Annotations[clusterv1.MachineSkipRemediationAnnotation]
	if skipping {
		return nil // ours from before a restart, or someone else's
	}
	if err := setAnnotations(ctx, r.Client, m, map[string]*string{clusterv1.MachineSkipRemediationAnnotation: nodes.Ptr(""), v1alpha1.AnnotationSkipRemediationBy: &owner}); err != nil {
		return fmt.Errorf("pausing remediation of Machine %s: %w", m.Name, err)
	}
	s.event(corev1.EventTypeNormal, "RemediationPaused", "Machine %s annotated %s for the maintenance", m.Name, clusterv1.MachineSkipRemediationAnnotation)
	return nil
}

// resumeRemediation removes the skip-remediation pauseRemediation set.
func (r *NodeCycleReconciler) resumeRemediation(ctx context.Context, s *step) error {
	if s.nc.Spec.MachineName == "" {
		return nil
	}
	m := &clusterv1.Machine{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.nc.Namespace, Name: s.nc.Spec.MachineName}, m); err != nil {
		return ctrl.IgnoreNotFound(err)
	}
	if m.Annotations[v1alpha1.AnnotationSkipRemediationBy] != s.nc.Namespace+"/"+s.nc.Name {
		return nil
	}
	if err := setAnnotations(ctx, r.Client, m, map[string]*string{clusterv1.MachineSkipRemediationAnnotation: nil, v1alpha1.AnnotationSkipRemediationBy: nil}); err != nil {
		return fmt.Errorf("resuming remediation of Machine %s: %w", m.Name, ctrl.IgnoreNotFound(err))
	}
	return nil
}
