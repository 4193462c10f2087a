package drain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lifecyclev1alpha1 "github.com/nodecycle/nodecycle/internal/apis/lifecycle/v1alpha1"
)

// Requester is nodecycle's name in the EvictionRequests it writes and,
// as a label key, on the Evictions the cluster keeps for them.
const Requester = "nodecycle.io/drain"

// LabelNode on an EvictionRequest of nodecycle's names the node whose
// drain wrote it (the node's name, or a hash of a name that is no label
// value): a drain that ends finds its requests by it.
const LabelNode = "nodecycle.io/node"

// requestPrefix begins the name of every EvictionRequest of nodecycle's;
// the pod's UID ends it, so a restarted manager finds the one it wrote
// and never writes two for a pod.
const requestPrefix = "nodecycle-drain-"

// RequestName is the name of the EvictionRequest of nodecycle's for a pod.
func RequestName(pod *corev1.Pod) string { return requestPrefix + string(pod.UID) }

// NodeLabelValue is the LabelNode value of a node's requests.
func NodeLabelValue(node string) string {
	if len(validation.IsValidLabelValue(node)) == 0 {
		return node
	}
	sum := sha256.Sum256([]byte(node))
	return "sha256-" + hex.EncodeToString(sum[:])[:56]
}

// Responder is what a drain step saw of the responder that holds a pod.
type Responder struct {
	Name string
	// Since is when it became active (its start time); zero when unknown.
	Since time.Time
	// Heartbeat is its last heartbeat; zero when it sent none.
	Heartbeat time.Time
	Message   string
}

// Holds says who holds the pod, since when and its last heartbeat, in
// absolute times: the same text until the responder reports again (a
// NodeCycle's message is written only when it changes).
func (r Responder) Holds() string {
	parts := []string{"responder " + r.Name + " active"}
	if !r.Since.IsZero() {
		parts[0] += " since " + r.Since.UTC().Format(time.RFC3339)
	}
	if !r.Heartbeat.IsZero() {
		parts = append(parts, "heartbeat "+r.Heartbeat.UTC().Format(time.RFC3339))
	}
	return withMessage(strings.Join(parts, ", "), r.Message)
}

func withMessage(s, message string) string {
	if message != "" {
		s += ": " + message
	}
	return s
}

// Describe says who holds the pod and for how long, as of now (an Event's
// text).
func (r Responder) Describe(now time.Time) string {
	parts := []string{"responder " + r.Name + " active"}
	if !r.Since.IsZero() {
		parts = append(parts, now.Sub(r.Since).Round(time.Second).String())
	}
	if !r.Heartbeat.IsZero() {
		parts = append(parts, fmt.Sprintf("heartbeat %s ago", now.Sub(r.Heartbeat).Round(time.Second)))
	}
	return withMessage(strings.Join(parts, ", "), r.Message)
}

// ReasonRequested is the Waiting reason of a pod whose EvictionRequest
// this step wrote.
const ReasonRequested = "eviction requested"

// requestState is what one drain step read of the node's requests and
// their Evictions: each listed once, when first needed.
type requestState struct {
	requests  map[string]*lifecyclev1alpha1.EvictionRequest // by namespace/name
	evictions map[types.UID]*lifecyclev1alpha1.Eviction     // by target pod UID
}

// request asks for the pod's eviction through an EvictionRequest, or
// follows the one already written. It returns why the pod is still there
// and, while a responder of the pod's is working on it, who.
func (d *Drainer) request(ctx context.Context, pod *corev1.Pod, node string, st *requestState) (string, *Responder, error) {
	if st.requests == nil {
		var list lifecyclev1alpha1.EvictionRequestList
		if err := d.Reader.List(ctx, &list, client.MatchingLabels{LabelNode: NodeLabelValue(node)}); err != nil {
			return "", nil, fmt.Errorf("listing the EvictionRequests of node %s: %w", node, err)
		}
		st.requests = map[string]*lifecyclev1alpha1.EvictionRequest{}
		for i := range list.Items {
			st.requests[list.Items[i].Namespace+"/"+list.Items[i].Name] = &list.Items[i]
		}
	}
	er, ok := st.requests[pod.Namespace+"/"+RequestName(pod)]
	if !ok {
		return d.createRequest(ctx, pod, node)
	}
	if why := notOurs(er, pod); why != "" {
		return why, nil, nil
	}
	if er.Spec.Intent != lifecyclev1alpha1.IntentEviction {
		// Withdrawn by an earlier drain of the node: asked for again.
		if err := d.setIntent(ctx, er, lifecyclev1alpha1.IntentEviction); err != nil {
			return "", nil, err
		}
		return ReasonRequested, nil, nil
	}
	if c := meta.FindStatusCondition(er.Status.Conditions, lifecyclev1alpha1.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		// Every responder gave up: the next step asks again from the start.
		if err := d.Writer.Delete(ctx, er, client.Preconditions{UID: &er.UID}); err != nil && !apierrors.IsNotFound(err) {
			return "", nil, podError{fmt.Errorf("deleting failed EvictionRequest %s/%s: %w", er.Namespace, er.Name, err)}
		}
		return fmt.Sprintf("eviction failed (%s: %s), asking again", c.Reason, c.Message), nil, nil
	}
	if st.evictions == nil {
		var list lifecyclev1alpha1.EvictionList
		if err := d.Reader.List(ctx, &list, client.HasLabels{Requester}); err != nil {
			return "", nil, fmt.Errorf("listing the Evictions nodecycle asked for: %w", err)
		}
		st.evictions = map[types.UID]*lifecyclev1alpha1.Eviction{}
		for i := range list.Items {
			if t := list.Items[i].Spec.Target.Pod; t != nil {
				st.evictions[t.UID] = &list.Items[i]
			}
		}
	}
	ev, ok := st.evictions[pod.UID]
	if !ok {
		return "eviction requested, waiting for the cluster's evictionrequest-controller", nil, nil
	}
	return describe(ev)
}

func (d *Drainer) createRequest(ctx context.Context, pod *corev1.Pod, node string) (string, *Responder, error) {
	er := &lifecyclev1alpha1.EvictionRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: RequestName(pod),
			Labels: map[string]string{LabelNode: NodeLabelValue(node)},
			// Goes with its pod where a garbage collector runs.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}},
		Spec: lifecyclev1alpha1.EvictionRequestSpec{
			Target:    lifecyclev1alpha1.Target{Pod: &lifecyclev1alpha1.PodReference{Name: pod.Name, UID: pod.UID}},
			Requester: Requester,
			Intent:    lifecyclev1alpha1.IntentEviction,
		},
	}
	err := d.Writer.Create(ctx, er)
	if apierrors.IsAlreadyExists(err) {
		// One of the name, but not among the node's: written without the
		// node's label (by an earlier manager, or by someone else).
		return d.adopt(ctx, pod, node, client.ObjectKeyFromObject(er))
	}
	if err != nil {
		return "", nil, podError{fmt.Errorf("creating EvictionRequest for pod %s/%s: %w", pod.Namespace, pod.Name, err)}
	}
	return ReasonRequested, nil, nil
}

// adopt takes over a request of the pod's name that the node's list did
// not show: when it is nodecycle's, for this very pod, it gets the node's
// label (the next steps find it); anyone else's is left alone, and named.
func (d *Drainer) adopt(ctx context.Context, pod *corev1.Pod, node string, key client.ObjectKey) (string, *Responder, error) {
	er := &lifecyclev1alpha1.EvictionRequest{}
	if err := d.Reader.Get(ctx, key, er); err != nil {
		return "", nil, podError{fmt.Errorf("reading EvictionRequest %s: %w", key, err)}
	}
	if why := notOurs(er, pod); why != "" {
		return why, nil, nil
	}
	before := er.DeepCopy()
	if er.Labels == nil {
		er.Labels = map[string]string{}
	}
	er.Labels[LabelNode] = NodeLabelValue(node)
	if err := d.Writer.Patch(ctx, er, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return "", nil, podError{fmt.Errorf("labelling EvictionRequest %s: %w", key, err)}
	}
	return ReasonRequested, nil, nil
}

// notOurs says why a request of the pod's name is not nodecycle's for
// that pod ("" when it is): another requester, or another target (a pod
// of the same name and UID cannot be another pod, but a request can be
// written by hand to say anything).
func notOurs(er *lifecyclev1alpha1.EvictionRequest, pod *corev1.Pod) string {
	t := er.Spec.Target.Pod
	if er.Spec.Requester == Requester && t != nil && t.UID == pod.UID && t.Name == pod.Name {
		return ""
	}
	target := "no pod"
	if t != nil {
		target = fmt.Sprintf("pod %s (UID %s)", t.Name, t.UID)
	}
	return fmt.Sprintf("EvictionRequest %s is not nodecycle's for this pod (requester %q, target %s): left alone; delete it so the drain can ask", er.Name, er.Spec.Requester, target)
}

// podError is a failure to ask for one pod's eviction: the pod waits with
// it as its reason, and the drain goes on with the others (the drain
// timeout holds).
type podError struct{ error }

func (d *Drainer) setIntent(ctx context.Context, er *lifecyclev1alpha1.EvictionRequest, intent lifecyclev1alpha1.Intent) error {
	before := er.DeepCopy()
	er.Spec.Intent = intent
	if err := d.Writer.Patch(ctx, er, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		return podError{fmt.Errorf("setting intent %s on EvictionRequest %s/%s: %w", intent, er.Namespace, er.Name, err)}
	}
	return nil
}

// describe says where an Eviction stands: evicted, failed, or held by
// its active responder.
func describe(ev *lifecyclev1alpha1.Eviction) (string, *Responder, error) {
	if c := meta.FindStatusCondition(ev.Status.Conditions, lifecyclev1alpha1.ConditionTargetEvicted); c != nil && c.Status == metav1.ConditionTrue {
		return ReasonEvicted, nil, nil
	}
	for _, tr := range ev.Status.TargetResponders {
		if tr.State != lifecyclev1alpha1.ResponderActive {
			continue
		}
		r := &Responder{Name: tr.Name}
		for _, st := range ev.Status.Responders {
			if st.Name != tr.Name {
				continue
			}
			if st.StartTime != nil {
				r.Since = st.StartTime.Time
			}
			if st.HeartbeatTime != nil {
				r.Heartbeat = st.HeartbeatTime.Time
			}
			if st.Message != nil {
				r.Message = *st.Message
			}
		}
		return "", r, nil
	}
	return "eviction requested, no responder active yet", nil, nil
}

// Withdraw sets intent Withdrawn on every EvictionRequest of nodecycle's
// for the node's pods that still asks for an eviction, and returns the
// pods it withdrew from (namespace/name, sorted by the API's order). A
// cluster that does not serve EvictionRequests has none.
func (d *Drainer) Withdraw(ctx context.Context, node string) ([]string, error) {
	var list lifecyclev1alpha1.EvictionRequestList
	if err := d.Reader.List(ctx, &list, client.MatchingLabels{LabelNode: NodeLabelValue(node)}); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing the EvictionRequests of node %s: %w", node, err)
	}
	var withdrawn []string
	for i := range list.Items {
		er := &list.Items[i]
		if er.Spec.Requester != Requester || er.Spec.Intent == lifecyclev1alpha1.IntentWithdrawn || er.Spec.Target.Pod == nil {
			continue
		}
		if c := meta.FindStatusCondition(er.Status.Conditions, lifecyclev1alpha1.ConditionTargetEvicted); c != nil && c.Status == metav1.ConditionTrue {
			continue // its pod is gone or going: nothing left to withdraw
		}
		if err := d.setIntent(ctx, er, lifecyclev1alpha1.IntentWithdrawn); err != nil {
			return withdrawn, err
		}
		withdrawn = append(withdrawn, er.Namespace+"/"+er.Spec.Target.Pod.Name)
	}
	return withdrawn, nil
}
