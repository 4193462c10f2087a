package nodecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// replacePollInterval: the replace strategy's waits look at the Machines
// this often (they are not watched by the NodeCycle controller).
const replacePollInterval = 2 * time.Second

// replace is the Cluster API strategy that takes the node away: the
// cordoned node's Machine is deleted (Cluster API drains it, honouring its
// pre-drain and pre-terminate hooks and its nodeDrainTimeout), and the
// NodeCycle holds the cluster's slot until the Machine is gone and a
// Machine its MachineSet created since then has a Ready Node. There is no
// uncordon: the node goes away.
//
//	DeletingMachine -> WaitingForReplacement -> Succeeded | Failed
type replace struct {
	// client reaches the management cluster, where the Machines are.
	client client.Client
	// defaultTimeout bounds a replace whose NodeCycle sets no timeout.
	defaultTimeout time.Duration
}

func (*replace) Name() v1alpha1.Strategy { return v1alpha1.StrategyReplace }
func (*replace) InPlace() bool           { return false }
func (*replace) Phases() []PhaseSpec {
	return []PhaseSpec{
		{Phase: v1alpha1.PhaseDeletingMachine, Reason: v1alpha1.ReasonDeletingMachine},
		{Phase: v1alpha1.PhaseWaitingForReplacement, Reason: v1alpha1.ReasonWaitingForReplacement},
	}
}

// Abandon: a Machine being deleted goes on being replaced by Cluster API.
func (*replace) Abandon(context.Context, *scope) (string, time.Duration) { return "", 0 }

// Check refuses a node without a Cluster API Machine: nothing would
// replace it.
func (*replace) Check(_ context.Context, s *scope) (v1alpha1.Reason, error) {
	if s.target.Machine() == "" {
		return v1alpha1.ReasonNotAClusterAPINode, fmt.Errorf("Strategy replace needs a Cluster API Machine; node %s has none (replace works only with --cluster-api)", s.nc.Spec.NodeName)
	}
	return "", nil
}

func (*replace) Start(s *scope) {
	s.moveTo(v1alpha1.PhaseDeletingMachine, fmt.Sprintf("Deleting Machine %s", s.target.Machine()))
}

func (st *replace) Advance(ctx context.Context, s *scope) (reconcile.Result, error) {
	if s.nc.Status.Phase == v1alpha1.PhaseDeletingMachine {
		return st.deleteMachine(ctx, s)
	}
	return st.waitForReplacement(ctx, s)
}

// deleteMachine deletes the NodeCycle's Machine, once.
func (st *replace) deleteMachine(ctx context.Context, s *scope) (reconcile.Result, error) {
	name := s.target.Machine() // Check made sure there is one
	m := &clusterv1.Machine{}
	err := st.client.Get(ctx, client.ObjectKey{Namespace: s.nc.Namespace, Name: name}, m)
	if apierrors.IsNotFound(err) {
		// Deleted before a restart, or by someone else: wait for the replacement.
		s.moveTo(v1alpha1.PhaseWaitingForReplacement, fmt.Sprintf("Machine %s is gone; waiting for a replacement from MachineSet %s", name, s.nc.Status.MachineSet))
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if m.Status.NodeRef.IsDefined() && m.Status.NodeRef.Name != s.nc.Spec.NodeName {
		s.fail(v1alpha1.ReasonNotAClusterAPINode, fmt.Sprintf("Machine %s has node %s, not %s; it is not deleted", name, m.Status.NodeRef.Name, s.nc.Spec.NodeName))
		return reconcile.Result{}, nil
	}
	ms := metav1.GetControllerOf(m)
	if ms == nil || ms.Kind != "MachineSet" {
		s.fail(v1alpha1.ReasonNoMachineSet, fmt.Sprintf("Machine %s is not controlled by a MachineSet; nothing would replace it, so it is not deleted", name))
		return reconcile.Result{}, nil
	}
	if s.nc.Status.MachineSet == "" {
		// Saved before the delete, so a restart knows whose replacement to wait for.
		s.nc.Status.MachineSet = ms.Name
		return reconcile.Result{}, nil
	}
	if m.DeletionTimestamp.IsZero() {
		if err := st.client.Delete(ctx, m, client.Preconditions{UID: &m.UID}); client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, fmt.Errorf("deleting Machine %s: %w", name, err)
		}
		s.event(corev1.EventTypeNormal, v1alpha1.ReasonMachineDeleted, "Machine %s deleted; Cluster API drains it and MachineSet %s replaces it", name, ms.Name)
	}
	s.moveTo(v1alpha1.PhaseWaitingForReplacement, fmt.Sprintf("Waiting for Cluster API to drain and delete Machine %s", name))
	return reconcile.Result{}, nil
}

// waitForReplacement ends the NodeCycle once the old Machine is gone and a
// new Machine of its MachineSet has a Ready Node, or fails it at the
// replace timeout.
func (st *replace) waitForReplacement(ctx context.Context, s *scope) (reconcile.Result, error) {
	status := &s.nc.Status
	message, done, err := st.replacementState(ctx, s)
	if err != nil {
		return reconcile.Result{}, err
	}
	if done {
		s.finish(v1alpha1.PhaseSucceeded, "", fmt.Sprintf("Machine %s replaced by Machine %s, whose node is Ready", s.target.Machine(), status.ReplacementMachine))
		return reconcile.Result{}, nil
	}
	waited := s.elapsed()
	timeout := st.defaultTimeout
	if s.nc.Spec.ReplaceTimeout != nil {
		timeout = s.nc.Spec.ReplaceTimeout.Duration
	}
	if waited >= timeout {
		// Nothing to uncordon: the old node is being deleted by Cluster API.
		s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonReplaceTimeout, fmt.Sprintf("Replacement not done within %s: %s", timeout, message))
		return reconcile.Result{}, nil
	}
	status.Message = message
	return reconcile.Result{RequeueAfter: min(replacePollInterval, timeout-waited)}, nil
}

// replacementState says where the replacement stands.
func (st *replace) replacementState(ctx context.Context, s *scope) (message string, done bool, err error) {
	status := &s.nc.Status
	name := s.target.Machine()
	old := &clusterv1.Machine{}
	err = st.client.Get(ctx, client.ObjectKey{Namespace: s.nc.Namespace, Name: name}, old)
	if err == nil {
		return fmt.Sprintf("Waiting for Cluster API to drain and delete Machine %s", old.Name), false, nil
	}
	if !apierrors.IsNotFound(err) {
		return "", false, err
	}
	var list clusterv1.MachineList
	if err := st.client.List(ctx, &list, client.InNamespace(s.nc.Namespace), client.MatchingLabels{clusterv1.ClusterNameLabel: s.nc.Spec.ClusterName}); err != nil {
		return "", false, fmt.Errorf("listing Machines: %w", err)
	}
	if status.StartTime == nil {
		return "", false, errors.New("the NodeCycle has no startTime; its status was edited")
	}
	since := status.StartTime.Truncate(time.Second) // creation timestamps have whole seconds
	message = fmt.Sprintf("Machine %s is gone; waiting for MachineSet %s to create its replacement", name, status.MachineSet)
	for i := range list.Items {
		m := &list.Items[i]
		if owner := metav1.GetControllerOf(m); owner == nil || owner.Name != status.MachineSet || m.CreationTimestamp.Time.Before(since) || !m.DeletionTimestamp.IsZero() {
			continue
		}
		if !m.Status.NodeRef.IsDefined() {
			message = fmt.Sprintf("Replacement Machine %s created; waiting for its Node", m.Name)
			continue
		}
		node := &corev1.Node{}
		if err := s.workload().Client.Get(ctx, client.ObjectKey{Name: m.Status.NodeRef.Name}, node); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return "", false, err
		}
		if !nodes.IsReady(node) {
			message = fmt.Sprintf("Replacement Machine %s has Node %s; waiting for it to be Ready", m.Name, node.Name)
			continue
		}
		status.ReplacementMachine = m.Name
		return "", true, nil
	}
	return message, false, nil
}
