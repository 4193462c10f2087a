package drain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// mirrorPodAnnotation marks static pods the kubelet mirrors into the API.
const mirrorPodAnnotation = "kubernetes.io/config.mirror"

// Drainer evicts pods. Reader should read from the API server directly (not
// a cache): a drain step needs the pods as they are now, and caching every
// pod of a cluster would cost the manager memory for nodes that need nothing.
type Drainer struct {
	Reader client.Reader
	Writer client.Client
	// Rules, when set, says how each pod is drained (Cluster API's
	// MachineDrainRules and the pod label cluster.x-k8s.io/drain); nil
	// drains every pod, all at once.
	Rules func(*corev1.Pod) Rule
	// Requests asks through EvictionRequests (lifecycle.k8s.io/v1alpha1):
	// the pod's eviction responders act before the cluster's imperative
	// evictor calls the Eviction API. Otherwise the drain calls the
	// Eviction API itself.
	Requests bool
}

// Behaviors of a Rule, as Cluster API's MachineDrainRule names them.
const (
	BehaviorDrain         = "Drain"
	BehaviorSkip          = "Skip"
	BehaviorWaitCompleted = "WaitCompleted"
)

// Rule is how the drain treats one pod: Drain (evicted, in groups by
// Order, the lowest first: a group starts once the one before it is gone),
// Skip (left on the node), WaitCompleted (not evicted; the drain waits
// until it completes; it belongs to order 0). Source names where the rule
// comes from, for the messages.
type Rule struct {
	Behavior string
	Order    int32
	Source   string
}

func (d *Drainer) rule(pod *corev1.Pod) Rule {
	if d.Rules == nil {
		return Rule{Behavior: BehaviorDrain}
	}
	r := d.Rules(pod)
	if r.Behavior == BehaviorWaitCompleted {
		r.Order = 0
	}
	return r
}

// PodState is one pod still on the node and why.
type PodState struct {
	Pod    string // namespace/name
	Reason string
	// Responder is the eviction responder working on the pod (requests
	// only); nil when none is.
	Responder *Responder
}

// Result is what one step saw and did.
type Result struct {
	// Evictable counts the pods the drain has to remove that are still on the node.
	Evictable int
	// Waiting lists the pods still on the node, sorted, with why.
	Waiting []PodState
	// Refused lists pods the options forbid evicting; the drain cannot finish.
	Refused []PodState
}

// Done reports whether no pod is left to wait for.
func (r Result) Done() bool { return len(r.Waiting) == 0 && len(r.Refused) == 0 }

// Summary is a stable, human message: the same pods give the same text.
func (r Result) Summary(limit int) string {
	list := r.Waiting
	if len(r.Refused) > 0 {
		list = r.Refused
	}
	parts := make([]string, 0, limit)
	for i, p := range list {
		if i == limit {
			parts = append(parts, fmt.Sprintf("and %d more", len(list)-limit))
			break
		}
		parts = append(parts, p.Pod+" ("+p.Reason+")")
	}
	return strings.Join(parts, ", ")
}

// Step evicts every evictable pod on the node that is not already going
// away, and reports what is left, as of now. It never waits.
func (d *Drainer) Step(ctx context.Context, nodeName string, opts v1alpha1.DrainSpec, now time.Time) (Result, error) {
	pods, err := d.pods(ctx, nodeName, opts)
	if err != nil {
		return Result{}, err
	}
	var res Result
	var requests requestState
	// The group drained now: the lowest order among the pods left.
	first := int32(0)
	for i := range pods {
		if r := d.rule(&pods[i]); i == 0 || r.Order < first {
			first = r.Order
		}
	}
	for i := range pods {
		pod := &pods[i]
		key := client.ObjectKeyFromObject(pod).String()
		switch r := d.rule(pod); {
		case r.Behavior == BehaviorWaitCompleted:
			res.Evictable++
			res.Waiting = append(res.Waiting, PodState{Pod: key, Reason: "waiting for it to complete (" + r.Source + ")"})
			continue
		case r.Order > first:
			res.Evictable++
			res.Waiting = append(res.Waiting, PodState{Pod: key, Reason: fmt.Sprintf("drained after the pods of order %d (%s)", first, r.Source)})
			continue
		}
		if why := refuse(pod, opts); why != "" {
			res.Refused = append(res.Refused, PodState{Pod: key, Reason: why})
			continue
		}
		if pod.DeletionTimestamp != nil {
			if skipWait := opts.SkipWaitForDeleteTimeoutSeconds; skipWait > 0 && now.Sub(pod.DeletionTimestamp.Time) > time.Duration(skipWait)*time.Second {
				continue // deleted long ago: its node may never confirm it gone
			}
			res.Evictable++
			res.Waiting = append(res.Waiting, PodState{Pod: key, Reason: ReasonTerminating})
			continue
		}
		res.Evictable++
		if !d.Requests {
			if why := d.evict(ctx, pod, opts); why != "" {
				res.Waiting = append(res.Waiting, PodState{Pod: key, Reason: why})
			}
			continue
		}
		why, responder, err := d.request(ctx, pod, nodeName, &requests)
		if pe := (podError{}); errors.As(err, &pe) {
			why, err = "asking for its eviction failed: "+pe.Error(), nil
		}
		if err != nil {
			return res, err
		}
		if responder != nil {
			why = responder.Holds()
		}
		if why != "" {
			res.Waiting = append(res.Waiting, PodState{Pod: key, Reason: why, Responder: responder})
		}
	}
	return res, nil
}

// DeleteRemaining deletes the pods the drain would still wait for and that
// are not already being deleted (DeleteAfterTimeout: no
// PodDisruptionBudget is asked), with the drain's grace period, and returns
// them, sorted.
func (d *Drainer) DeleteRemaining(ctx context.Context, nodeName string, opts v1alpha1.DrainSpec) ([]string, error) {
	pods, err := d.pods(ctx, nodeName, opts)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil || refuse(pod, opts) != "" || d.rule(pod).Behavior == BehaviorWaitCompleted {
			continue // WaitCompleted: never evicted nor deleted
		}
		del := &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}}
		if opts.GracePeriodSeconds >= 0 {
			del.GracePeriodSeconds = &opts.GracePeriodSeconds
		}
		if err := d.Writer.Delete(ctx, pod, del); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return deleted, fmt.Errorf("deleting pod %s: %w", client.ObjectKeyFromObject(pod), err)
		}
		deleted = append(deleted, client.ObjectKeyFromObject(pod).String())
	}
	return deleted, nil
}

// pods lists, sorted, the pods on the node that the drain removes: not
// the ones it skips, and only those of opts.PodSelector when it is set.
func (d *Drainer) pods(ctx context.Context, nodeName string, opts v1alpha1.DrainSpec) ([]corev1.Pod, error) {
	sel := labels.Everything()
	if opts.PodSelector != nil {
		var err error
		if sel, err = metav1.LabelSelectorAsSelector(opts.PodSelector); err != nil {
			return nil, fmt.Errorf("drain pod selector: %w", err)
		}
	}
	var list corev1.PodList
	if err := d.Reader.List(ctx, &list, client.MatchingFields{"spec.nodeName": nodeName}); err != nil {
		return nil, fmt.Errorf("listing pods on node %s: %w", nodeName, err)
	}
	pods := slices.DeleteFunc(list.Items, func(p corev1.Pod) bool {
		return skip(&p) || !sel.Matches(labels.Set(p.Labels)) || d.rule(&p).Behavior == BehaviorSkip
	})
	sort.Slice(pods, func(i, j int) bool {
		return client.ObjectKeyFromObject(&pods[i]).String() < client.ObjectKeyFromObject(&pods[j]).String()
	})
	return pods, nil
}

// skip reports pods a drain leaves alone: mirror pods (the kubelet owns
// them), DaemonSet pods (the DaemonSet would put them right back), pods
// labelled nodecycle.io/drain=skip (nodecycle's own manager: evicting the
// manager in the middle of its work would leave the node cordoned until a
// new one is scheduled, never on a one-node cluster; the pod goes down with
// the reboot instead, and comes back with the node or on its standby) and
// pods that already finished.
func skip(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[mirrorPodAnnotation]; ok {
		return true
	}
	if pod.Labels[v1alpha1.LabelDrain] == "skip" {
		return true
	}
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == "DaemonSet" {
		return true
	}
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func refuse(pod *corev1.Pod, opts v1alpha1.DrainSpec) string {
	if !opts.EvictUnmanagedPods && metav1.GetControllerOf(pod) == nil {
		return "not managed by a controller; set evictUnmanagedPods to evict it"
	}
	if !opts.DeleteEmptyDirData {
		for _, v := range pod.Spec.Volumes {
			if v.EmptyDir != nil {
				return "uses emptyDir volume " + v.Name + "; set deleteEmptyDirData to evict it"
			}
		}
	}
	return ""
}

// evict asks for the pod's eviction. It returns why the pod is still there
// ("" when the eviction was accepted or the pod is gone). An eviction the
// API server refuses for another reason than a PodDisruptionBudget (a
// 500 for two PDBs over one pod, a webhook that denies it) is such a
// reason too: the drain goes on with the other pods, and its timeout ends
// it if the refusal does not go away.
func (d *Drainer) evict(ctx context.Context, pod *corev1.Pod, opts v1alpha1.DrainSpec) string {
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}}
	if opts.GracePeriodSeconds >= 0 {
		grace := opts.GracePeriodSeconds
		ev.DeleteOptions = &metav1.DeleteOptions{GracePeriodSeconds: &grace}
	}
	err := d.Writer.SubResource("eviction").Create(ctx, pod, ev)
	switch {
	case err == nil:
		return ReasonEvicted
	case apierrors.IsNotFound(err):
		return ""
	case apierrors.IsTooManyRequests(err):
		// The API server refuses evictions that would violate a PDB with 429.
		return d.blockingPDBs(ctx, pod)
	default:
		return "eviction refused: " + err.Error()
	}
}

// blockingPDBs names the PodDisruptionBudgets that select the pod.
func (d *Drainer) blockingPDBs(ctx context.Context, pod *corev1.Pod) string {
	var pdbs policyv1.PodDisruptionBudgetList
	if err := d.Reader.List(ctx, &pdbs, client.InNamespace(pod.Namespace)); err != nil {
		return "eviction refused by a PodDisruptionBudget"
	}
	var names []string
	for _, pdb := range pdbs.Items {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		names = append(names, fmt.Sprintf("PDB %s/%s allows %d disruptions", pdb.Namespace, pdb.Name, pdb.Status.DisruptionsAllowed))
	}
	if len(names) == 0 {
		return "eviction refused by a PodDisruptionBudget"
	}
	sort.Strings(names)
	return "blocked by " + strings.Join(names, ", ")
}

// Waiting reasons of pods that are going away: ReasonEvicted for a pod
// whose eviction this step accepted, ReasonTerminating for one whose
// deletion began before.
const (
	ReasonEvicted     = "evicted, terminating"
	ReasonTerminating = "terminating"
)

// Going returns the pods left that are being deleted: evicted, or deleted
// otherwise, and still on the node.
func (r Result) Going() []PodState {
	var going []PodState
	for _, p := range r.Waiting {
		if p.Reason == ReasonEvicted || p.Reason == ReasonTerminating {
			going = append(going, p)
		}
	}
	return going
}
