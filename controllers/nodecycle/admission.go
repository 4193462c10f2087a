package nodecycle

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/gates"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// admit takes a maintenance slot of the cluster for the NodeCycle, or waits
// (Pending) and says why in the message. The slot rule is here and only
// here: at most Config.MaxConcurrent nodes of a cluster hold a slot, and a
// control-plane node holds the whole cluster.
func (r *Reconciler) admit(ctx context.Context, s *step) (reconcile.Result, error) {
	res, err := r.tryAdmit(ctx, s)
	if err != nil {
		return res, err
	}
	// taintWhileWaiting: on while Pending; off when it ends without
	// starting (the cordon takes it off when it starts).
	p := s.nc.Status.Phase
	want := p == v1alpha1.PhasePending && ptr.Deref(s.nc.Spec.TaintWhileWaiting, false)
	if (want || p.Terminal()) && want != nodes.HasWaitingTaint(s.node) {
		if err := nodes.SetWaitingTaint(ctx, s.workload().Client, s.node, want); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{RequeueAfter: conflictRetry}, nil
			}
			return reconcile.Result{}, fmt.Errorf("tainting node %s: %w", s.node.Name, err)
		}
	}
	return res, nil
}

// tryAdmit is admit without the taint of a waiting node.
func (r *Reconciler) tryAdmit(ctx context.Context, s *step) (reconcile.Result, error) {
	if ok, reason, msg := r.Config.Eligibility(s.node); !ok {
		s.finish(v1alpha1.PhaseSkipped, reason, msg)
		return reconcile.Result{}, nil
	}
	for _, name := range s.nc.Spec.Strategies {
		if _, ok := s.table[name]; !ok {
			s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidStrategy, fmt.Sprintf("Strategy %q of the ladder %s is unknown", name, ladderString(s.nc.Spec.Strategies)))
			return reconcile.Result{}, nil
		}
	}
	// An on-demand request needs no RebootRequired: a person asked; nor
	// a remediation: a MachineHealthCheck did.
	asked := s.nc.Spec.Request != nil || s.nc.Spec.Remediation != ""
	if !asked && !nodes.IsConditionTrue(s.node, v1alpha1.ConditionRebootRequired) {
		s.finish(v1alpha1.PhaseSkipped, v1alpha1.ReasonRebootNoLongerRequired, fmt.Sprintf("Node no longer has %s=True", v1alpha1.ConditionRebootRequired))
		return reconcile.Result{}, nil
	}
	if s.nc.Status.Phase == "" {
		s.nc.Status.Phase = v1alpha1.PhasePending
		s.nc.Status.Strategy = s.currentName() // shown while it waits
	}
	if !nodes.IsReady(s.node) && s.nc.Spec.Remediation == "" { // an unhealthy node is a remediation's reason
		s.nc.Status.Message = "Waiting for the node to be Ready before starting"
		return reconcile.Result{RequeueAfter: slotPollInterval}, nil
	}
	if why, err := s.target.Paused(ctx); err != nil || why != "" {
		s.nc.Status.Message = "Waiting: " + why
		return reconcile.Result{RequeueAfter: slotPollInterval}, err
	}
	if hold, wait := r.window(s); hold {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	// The cache answers "no slot" cheaply for the many waiting NodeCycles;
	// only a free slot is worth the gates that ask other servers (pods on
	// the node, Alertmanager), and is confirmed against the API server.
	slots, slotsErr := r.slots(ctx, s)
	if slotsErr != nil {
		return reconcile.Result{}, slotsErr
	}
	s.maxSlots = slots
	// NodeCycles ahead in the queue (waiting for a slot too, with a higher
	// priority or older) are served first: a slot they will take counts
	// as taken.
	if taken, err := r.slotsTaken(ctx, r.Client, s); err != nil || taken+s.ahead >= s.maxSlots {
		r.waitForSlot(s, min(taken+s.ahead, s.maxSlots))
		return reconcile.Result{RequeueAfter: slotPollInterval}, err
	}
	if hold, wait, err := r.blockers(ctx, s); err != nil || hold {
		return reconcile.Result{RequeueAfter: wait}, err
	}
	// The strategies' checks (provider calls among them) are made before
	// the admission lock is taken: a slow BMC must not hold up other
	// NodeCycles' admission.
	for _, name := range s.nc.Spec.Strategies {
		if reason, err := s.table[name].Check(ctx, s); err != nil {
			// Nothing was done to the node; it is retried with backoff.
			s.finish(v1alpha1.PhaseFailed, reason, err.Error())
			return reconcile.Result{}, nil
		}
	}
	lock, _ := r.admission.LoadOrStore(s.nc.Namespace+"/"+s.nc.Spec.ClusterName, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	taken, err := r.slotsTaken(ctx, r.APIReader, s)
	if err != nil {
		return reconcile.Result{}, err
	}
	if taken >= s.maxSlots {
		r.waitForSlot(s, taken)
		return reconcile.Result{RequeueAfter: slotPollInterval}, nil
	}
	now := metav1.NewMicroTime(s.now)
	s.nc.Status.StartTime = &now
	s.moveTo(v1alpha1.PhaseCordoning, "Cordoning the node")
	s.event(corev1.EventTypeNormal, v1alpha1.ReasonMaintenanceStarted, "Maintenance started (strategy %s, attempt %d)", ladderString(s.nc.Spec.Strategies), s.nc.Spec.Attempt)
	// Saved while the lock is held, so the next admission's live read sees
	// the slot taken. A conflict means the NodeCycle changed since it was
	// read: nothing is taken, and it is decided again.
	if err := r.save(ctx, s); err != nil {
		if apierrors.IsConflict(err) {
			s.discard()
			return reconcile.Result{RequeueAfter: conflictRetry}, nil
		}
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, nil
}

// waitForSlot says, without naming the nodes that hold the slots: a message
// naming them would change, and be written for every waiting node, with
// every node that goes through maintenance.
func (r *Reconciler) waitForSlot(s *step, taken int) {
	if s.zoneBusy != "" {
		s.nc.Status.Message = fmt.Sprintf("Waiting for a maintenance slot: %s (at most one per %s)", s.zoneBusy, r.Config.TopologyKey)
		return
	}
	s.nc.Status.Message = fmt.Sprintf("%s%d of %d taken; kubectl get nodecycles shows which)", waitingForSlot, taken, s.maxSlots)
}

// waitingForSlot begins the message of a NodeCycle that waits for nothing
// but a slot of its cluster: the queue is made of those.
const waitingForSlot = "Waiting for a maintenance slot ("

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

// slotsTaken counts the nodes of the NodeCycle's cluster that hold a
// maintenance slot: those of active NodeCycles (read through reader) and
// those still cordoned by nodecycle after a failure. A control-plane node
// needs the whole cluster to itself: while one is in maintenance every slot
// counts as taken, and it waits until no other node holds one.
func (r *Reconciler) slotsTaken(ctx context.Context, reader client.Reader, s *step) (int, error) {
	nc := s.nc
	s.zoneBusy = ""
	// The whole namespace: a cordon's owner may be a NodeCycle of another
	// cluster whose Nodes this API server also serves.
	var list v1alpha1.NodeCycleList
	if err := reader.List(ctx, &list, client.InNamespace(nc.Namespace)); err != nil {
		return 0, fmt.Errorf("listing NodeCycles: %w", err)
	}
	busy := map[string]bool{}
	clusterOf := map[string]string{}
	controlPlane := false
	newest := map[string]*v1alpha1.NodeCycle{}
	s.ahead = 0
	for i, other := range list.Items {
		clusterOf[other.Name] = other.Spec.ClusterName
		if other.Spec.ClusterName != nc.Spec.ClusterName {
			continue
		}
		if other.Status.Phase == v1alpha1.PhasePending && other.Name != nc.Name &&
			strings.HasPrefix(other.Status.Message, waitingForSlot) && goesFirst(&list.Items[i], nc) {
			s.ahead++
		}
		if other.Status.Phase.Active() {
			busy[other.Spec.NodeName] = true
			controlPlane = controlPlane || other.Spec.ControlPlane
		}
		if n := newest[other.Spec.NodeName]; n == nil || n.CreationTimestamp.Before(&other.CreationTimestamp) {
			newest[other.Spec.NodeName] = &list.Items[i]
		}
	}
	// A node that failed in maintenance and is still down holds its slot
	// whoever cordoned it (an admin's cordon is not lifted, so the cordon
	// alone does not say it): its capacity is not back.
	for name, last := range newest {
		if busy[name] || name == nc.Spec.NodeName || last.Status.Phase != v1alpha1.PhaseFailed || last.Status.StartTime == nil {
			continue
		}
		node := &corev1.Node{}
		if err := s.workload().Client.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
			if !apierrors.IsNotFound(err) {
				return 0, fmt.Errorf("reading node %s: %w", name, err)
			}
			// Deleted during its maintenance (a machine that did not come
			// back, say): its slot is held for a reboot timeout after the
			// failure, then the cluster goes on without it.
			if last.Status.Reason == v1alpha1.ReasonNodeDeleted && last.Status.CompletionTime != nil &&
				s.now.Sub(last.Status.CompletionTime.Time) < last.Spec.RebootTimeout.Duration {
				busy[name] = true
			}
			continue
		}
		if !nodes.IsReady(node) && (last.Status.BootIDBefore == "" || nodes.BootID(node) == last.Status.BootIDBefore) {
			busy[name] = true
		}
	}
	var cordoned corev1.NodeList
	if err := s.workload().Client.List(ctx, &cordoned, nodes.CordonedByNodecycleSelector); err != nil {
		return 0, fmt.Errorf("listing nodes cordoned by nodecycle: %w", err)
	}
	for _, n := range cordoned.Items {
		ns, owner, _ := strings.Cut(n.Annotations[v1alpha1.AnnotationCordonedBy], "/")
		if cluster, known := clusterOf[owner]; n.Name == nc.Spec.NodeName || ns != nc.Namespace || (known && cluster != nc.Spec.ClusterName) {
			continue
		}
		busy[n.Name] = true
	}
	if len(busy) > 0 && (controlPlane || nc.Spec.ControlPlane) {
		return max(len(busy), s.maxSlots), nil
	}
	// With a topology key, a node whose zone already has one in
	// maintenance finds every slot taken.
	if key := r.Config.TopologyKey; key != "" && s.node != nil && len(busy) > 0 {
		zone := s.node.Labels[key]
		for name := range busy {
			other := &corev1.Node{}
			if err := s.workload().Client.Get(ctx, client.ObjectKey{Name: name}, other); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return 0, fmt.Errorf("reading node %s: %w", name, err)
			}
			if other.Labels[key] == zone {
				s.zoneBusy = fmt.Sprintf("another node of %s=%q is in maintenance", key, zone)
				return max(len(busy), s.maxSlots), nil
			}
		}
	}
	return len(busy), nil
}

// The gates hold the NodeCycle in Pending outside its maintenance windows
// and while a blocking pod runs on the node or a blocking alert fires; they
// say why in the message. A gate that cannot be evaluated fails the
// NodeCycle: nothing was done to the node. hold says the NodeCycle must not
// go on now; wait, when to look again.

// window is the gate of the maintenance windows, which asks no server.
func (r *Reconciler) window(s *step) (hold bool, wait time.Duration) {
	open, next, err := gates.InWindow(s.nc.Spec.MaintenanceWindows, s.now)
	if err != nil {
		s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidMaintenanceWindow, fmt.Sprintf("Policy %s: %v", s.nc.Spec.Policy, err))
		return true, 0
	}
	if !open {
		s.nc.Status.Message = fmt.Sprintf("Outside the maintenance windows; the next opens at %s", next.UTC().Format(time.RFC3339))
		return true, next.Sub(s.now)
	}
	return false, 0
}

// blockers are the gates that ask other servers: Alertmanager, and the
// pods on the node.
func (r *Reconciler) blockers(ctx context.Context, s *step) (hold bool, wait time.Duration, err error) {
	g := s.nc.Spec.Gates
	why, err := r.pausedBy(ctx, s)
	if err != nil {
		return true, 0, err
	}
	if why != "" {
		s.nc.Status.Message = "Waiting: paused, " + why
		return true, slotPollInterval, nil
	}
	if hold, wait, err = r.settling(ctx, s); err != nil || hold {
		return true, wait, err
	}
	if g.BlockingAlerts != nil {
		if notAllowed := gates.AlertmanagerAllowed(g.BlockingAlerts, s.nc.Namespace, r.Config.Namespace, r.Config.AlertmanagerURLs); notAllowed != nil {
			s.nc.Status.Message = fmt.Sprintf("Waiting: %v", notAllowed) // held: what cannot be checked is not known to be quiet
			return true, gatePollInterval, nil
		}
		firing, alertsErr := gates.BlockingAlerts(ctx, nil, g.BlockingAlerts)
		switch {
		case alertsErr != nil:
			// Fail closed: what cannot be checked is not known to be quiet.
			s.nc.Status.Message = fmt.Sprintf("Waiting: %v", alertsErr)
			return true, gatePollInterval, nil
		case len(firing) > 0:
			s.nc.Status.Message = fmt.Sprintf("Waiting: blocking alerts are firing: %s", strings.Join(firing, ", "))
			return true, gatePollInterval, nil
		}
	}
	// The pods on the node: a blocking selector's, or one annotated
	// nodecycle.io/do-not-disrupt=true, holds the maintenance.
	var pods corev1.PodList
	if err = s.workload().Reader.List(ctx, &pods, client.MatchingFields{"spec.nodeName": s.node.Name}); err != nil {
		return true, 0, fmt.Errorf("listing pods on node %s: %w", s.node.Name, err)
	}
	blocker, why, err := gates.BlockingPod(pods.Items, g.BlockingPodSelectors)
	if err != nil {
		s.finish(v1alpha1.PhaseFailed, v1alpha1.ReasonInvalidBlockingPodSelector, fmt.Sprintf("Policy %s: %v", s.nc.Spec.Policy, err))
		return true, 0, nil
	}
	if blocker != "" {
		s.nc.Status.Message = fmt.Sprintf("Waiting: pod %s runs on the node (%s)", blocker, why)
		return true, gatePollInterval, nil
	}
	return false, 0, nil
}

// settling holds a maintenance after the last one of its cluster: for the
// settle time after it ended, and while a PodDisruptionBudget of the
// cluster is not healthy (the evicted pods are not back yet).
func (r *Reconciler) settling(ctx context.Context, s *step) (hold bool, wait time.Duration, err error) {
	g := s.nc.Spec.Gates
	if g.SettleTime != nil && g.SettleTime.Duration > 0 {
		var list v1alpha1.NodeCycleList
		if err := r.Client.List(ctx, &list, client.InNamespace(s.nc.Namespace)); err != nil {
			return true, 0, fmt.Errorf("listing NodeCycles: %w", err)
		}
		var last *v1alpha1.NodeCycle
		for i, other := range list.Items {
			st := other.Status
			if other.Spec.ClusterName != s.nc.Spec.ClusterName || other.Name == s.nc.Name || st.StartTime == nil || st.CompletionTime == nil ||
				(st.Phase != v1alpha1.PhaseSucceeded && st.Phase != v1alpha1.PhaseFailed) {
				continue
			}
			if last == nil || last.Status.CompletionTime.Before(st.CompletionTime) {
				last = &list.Items[i]
			}
		}
		if last != nil {
			if since := s.now.Sub(last.Status.CompletionTime.Time); since < g.SettleTime.Duration {
				s.nc.Status.Message = fmt.Sprintf("Waiting: settling for %s after the maintenance of node %s ended at %s",
					g.SettleTime.Duration, last.Spec.NodeName, last.Status.CompletionTime.UTC().Format(time.RFC3339))
				return true, g.SettleTime.Duration - since, nil
			}
		}
	}
	if g.WaitForHealthyPodDisruptionBudgets == nil || !*g.WaitForHealthyPodDisruptionBudgets {
		return false, 0, nil
	}
	var pdbs policyv1.PodDisruptionBudgetList
	if err := s.workload().Reader.List(ctx, &pdbs); err != nil {
		return true, 0, fmt.Errorf("listing PodDisruptionBudgets: %w", err)
	}
	var unhealthy []string
	for _, p := range pdbs.Items {
		if p.Status.CurrentHealthy < p.Status.DesiredHealthy {
			unhealthy = append(unhealthy, fmt.Sprintf("%s/%s (%d of %d healthy)", p.Namespace, p.Name, p.Status.CurrentHealthy, p.Status.DesiredHealthy))
		}
	}
	if len(unhealthy) == 0 {
		return false, 0, nil
	}
	sort.Strings(unhealthy)
	if len(unhealthy) > 5 {
		unhealthy = append(unhealthy[:5], fmt.Sprintf("and %d more", len(unhealthy)-5))
	}
	s.nc.Status.Message = "Waiting: PodDisruptionBudgets not healthy yet: " + strings.Join(unhealthy, ", ")
	return true, gatePollInterval, nil
}

// pausedBy says who paused the NodeCycle's maintenance and why: the
// annotation nodecycle.io/paused on the manager's Namespace (all of
// nodecycle) or on the NodeCycle's policy; "" when neither holds it. (A
// Cluster API Cluster's pause is its Target's.) Read live: a pause is
// honoured at once.
func (r *Reconciler) pausedBy(ctx context.Context, s *step) (string, error) {
	ns := &corev1.Namespace{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: r.Config.Namespace}, ns); err != nil && !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("reading namespace %s: %w", r.Config.Namespace, err)
	}
	if why, ok := ns.Annotations[v1alpha1.AnnotationPaused]; ok {
		return fmt.Sprintf("namespace %s: %s", r.Config.Namespace, why), nil
	}
	if s.nc.Spec.Policy == "" {
		return "", nil
	}
	p := &v1alpha1.NodeCyclePolicy{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.nc.Namespace, Name: s.nc.Spec.Policy}, p); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if why, ok := p.Annotations[v1alpha1.AnnotationPaused]; ok {
		return fmt.Sprintf("policy %s: %s", p.Name, why), nil
	}
	return "", nil
}

// slots is the number of maintenance slots of the NodeCycle's cluster:
// --max-concurrent, or its percentage of the cluster's Nodes that
// nodecycle may handle (read from the cache), rounded up, at least 1.
func (r *Reconciler) slots(ctx context.Context, s *step) (int, error) {
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
