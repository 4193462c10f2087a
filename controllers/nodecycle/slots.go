package nodecycle

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// The slot rule is here and only here: at most Config.MaxConcurrent nodes
// of a cluster (or its percentage of the cluster's nodes) hold a
// maintenance slot, a control-plane node holds the whole cluster, and with
// a topology key one node per zone.

// slots is how the maintenance slots of a NodeCycle's cluster stand.
type slots struct {
	// max is the cluster's number of slots.
	max int
	// taken counts the other nodes that hold one: all of them when a
	// control-plane node is involved or the node's zone is busy.
	taken int
	// ahead counts the NodeCycles of the cluster that wait for a slot and
	// go first (a higher priority, or older): a slot they will take counts
	// as taken.
	ahead int
	// zoneBusy says that another node of this node's topology zone holds
	// a slot, when that is why the slots are taken.
	zoneBusy string
}

// free says whether a slot is left for the NodeCycle, with the ones ahead
// of it in the queue served first (queued) or not.
func (c slots) free(queued bool) bool {
	taken := c.taken
	if queued {
		taken += c.ahead
	}
	return taken < c.max
}

// waitingForSlot begins the message of a NodeCycle that waits for nothing
// but a slot of its cluster: the queue is made of those.
const waitingForSlot = "Waiting for a maintenance slot ("

// waitForSlot says, without naming the nodes that hold the slots: a message
// naming them would change, and be written for every waiting node, with
// every node that goes through maintenance.
func (r *Reconciler) waitForSlot(s *scope, c slots, queued bool) {
	if c.zoneBusy != "" {
		s.waitFor(v1alpha1.ReasonWaitingForSlot, fmt.Sprintf("Waiting for a maintenance slot: %s (at most one per %s)", c.zoneBusy, r.Config.TopologyKey))
		return
	}
	taken := c.taken
	if queued {
		taken = min(taken+c.ahead, c.max)
	}
	s.waitFor(v1alpha1.ReasonWaitingForSlot, fmt.Sprintf("%s%d of %d taken; kubectl get nodecycles shows which)", waitingForSlot, taken, c.max))
}

// countSlots counts the slots of the NodeCycle's cluster: the NodeCycles
// read through reader (the cache for a cheap "no", the API server under
// the admission lock), the nodes from the cluster's cache.
func (r *Reconciler) countSlots(ctx context.Context, reader client.Reader, s *scope) (slots, error) {
	var c slots
	maxSlots, err := r.maxSlots(ctx, s)
	if err != nil {
		return c, err
	}
	c.max = maxSlots
	// The whole namespace: a cordon's owner may be a NodeCycle of another
	// cluster whose Nodes this API server also serves.
	var list v1alpha1.NodeCycleList
	if err = reader.List(ctx, &list, client.InNamespace(s.nc.Namespace)); err != nil {
		return c, fmt.Errorf("listing NodeCycles: %w", err)
	}
	h := holders(list.Items, s.nc)
	c.ahead = h.ahead
	if err = r.failedAndDown(ctx, s, h); err != nil {
		return c, err
	}
	if err = cordonedByNodecycle(ctx, s, h); err != nil {
		return c, err
	}
	c.taken = len(h.busy)
	// A control-plane node needs the whole cluster to itself: while one is
	// in maintenance every slot counts as taken, and it waits until no
	// other node holds one.
	if c.taken > 0 && (h.controlPlane || s.nc.Spec.ControlPlane) {
		c.taken = max(c.taken, c.max)
		return c, nil
	}
	if c.zoneBusy, err = r.zoneBusy(ctx, s, h.busy); err != nil || c.zoneBusy != "" {
		c.taken = max(c.taken, c.max)
	}
	return c, err
}

// slotHolders is what the NodeCycles of a namespace say about the slots of
// one NodeCycle's cluster.
type slotHolders struct {
	// busy are the nodes that hold a slot.
	busy map[string]bool
	// clusterOf is each NodeCycle's cluster, by name.
	clusterOf map[string]string
	// controlPlane: a control-plane node is in maintenance.
	controlPlane bool
	// newest is each node's newest NodeCycle.
	newest map[string]*v1alpha1.NodeCycle
	ahead  int
}

// holders reads the slots held by active NodeCycles of nc's cluster and
// the queue ahead of nc.
func holders(list []v1alpha1.NodeCycle, nc *v1alpha1.NodeCycle) slotHolders {
	h := slotHolders{busy: map[string]bool{}, clusterOf: map[string]string{}, newest: map[string]*v1alpha1.NodeCycle{}}
	for i := range list {
		other := &list[i]
		h.clusterOf[other.Name] = other.Spec.ClusterName
		if other.Spec.ClusterName != nc.Spec.ClusterName {
			continue
		}
		if other.Status.Phase == v1alpha1.PhasePending && other.Name != nc.Name &&
			strings.HasPrefix(other.Status.Message, waitingForSlot) && goesFirst(other, nc) {
			h.ahead++
		}
		if other.Status.Phase.Active() {
			h.busy[other.Spec.NodeName] = true
			h.controlPlane = h.controlPlane || other.Spec.ControlPlane
		}
		if n := h.newest[other.Spec.NodeName]; n == nil || n.CreationTimestamp.Before(&other.CreationTimestamp) {
			h.newest[other.Spec.NodeName] = other
		}
	}
	return h
}

// failedAndDown marks busy the nodes that failed in maintenance and are
// still down, whoever cordoned them (an admin's cordon is not lifted, so
// the cordon alone does not say it): their capacity is not back.
func (r *Reconciler) failedAndDown(ctx context.Context, s *scope, h slotHolders) error {
	for name, last := range h.newest {
		if h.busy[name] || name == s.nc.Spec.NodeName || last.Status.Phase != v1alpha1.PhaseFailed || last.Status.StartTime == nil {
			continue
		}
		node := &corev1.Node{}
		if err := s.workload().Client.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("reading node %s: %w", name, err)
			}
			// Deleted during its maintenance (a machine that did not come
			// back, say): its slot is held for a reboot timeout after the
			// failure, then the cluster goes on without it.
			if last.Status.Reason == v1alpha1.ReasonNodeDeleted && last.Status.CompletionTime != nil &&
				s.now.Sub(last.Status.CompletionTime.Time) < last.Spec.RebootTimeout.Duration {
				h.busy[name] = true
			}
			continue
		}
		if !nodes.IsReady(node) && (last.Status.BootIDBefore == "" || nodes.BootID(node) == last.Status.BootIDBefore) {
			h.busy[name] = true
		}
	}
	return nil
}

// cordonedByNodecycle marks busy the nodes nodecycle cordoned for a
// NodeCycle of this namespace and cluster (a failed one's cordon stays
// until the node is Ready).
func cordonedByNodecycle(ctx context.Context, s *scope, h slotHolders) error {
	var cordoned corev1.NodeList
	if err := s.workload().Client.List(ctx, &cordoned, nodes.CordonedByNodecycleSelector); err != nil {
		return fmt.Errorf("listing nodes cordoned by nodecycle: %w", err)
	}
	for _, n := range cordoned.Items {
		ns, owner, _ := strings.Cut(n.Annotations[v1alpha1.AnnotationCordonedBy], "/")
		if cluster, known := h.clusterOf[owner]; n.Name == s.nc.Spec.NodeName || ns != s.nc.Namespace || (known && cluster != s.nc.Spec.ClusterName) {
			continue
		}
		h.busy[n.Name] = true
	}
	return nil
}

// zoneBusy says, with a topology key, that another node of the node's zone
// holds a slot.
func (r *Reconciler) zoneBusy(ctx context.Context, s *scope, busy map[string]bool) (string, error) {
	key := r.Config.TopologyKey
	if key == "" || s.node == nil || len(busy) == 0 {
		return "", nil
	}
	zone := s.node.Labels[key]
	for name := range busy {
		other := &corev1.Node{}
		if err := s.workload().Client.Get(ctx, client.ObjectKey{Name: name}, other); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return "", fmt.Errorf("reading node %s: %w", name, err)
		}
		if other.Labels[key] == zone {
			return fmt.Sprintf("another node of %s=%q is in maintenance", key, zone), nil
		}
	}
	return "", nil
}

// maxSlots is the number of maintenance slots of the NodeCycle's cluster:
// --max-concurrent, or its percentage of the cluster's Nodes that
// nodecycle may handle (read from the cache), rounded up, at least 1.
func (r *Reconciler) maxSlots(ctx context.Context, s *scope) (int, error) {
	pct := r.Config.MaxConcurrentPercent
	if pct == 0 {
		return r.Config.MaxConcurrent, nil
	}
	var list corev1.NodeList
	if err := s.workload().Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("listing nodes: %w", err)
	}
	eligible := 0
	for i := range list.Items {
		if ok, _, _ := r.Config.Eligibility(&list.Items[i]); ok {
			eligible++
		}
	}
	return max((eligible*pct+99)/100, r.Config.MaxConcurrent, 1), nil
}

// priority is the NodeCycle's nodecycle.io/priority; 0 when absent or not
// an integer.
func priority(nc *v1alpha1.NodeCycle) int64 {
	p, err := strconv.ParseInt(nc.Annotations[v1alpha1.AnnotationPriority], 10, 64)
	if err != nil {
		return 0
	}
	return p
}

// goesFirst says whether a waiting NodeCycle is served before b: a higher
// priority, then the older, then the name.
func goesFirst(a, b *v1alpha1.NodeCycle) bool {
	if pa, pb := priority(a), priority(b); pa != pb {
		return pa > pb
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}
