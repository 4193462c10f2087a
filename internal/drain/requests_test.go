package drain

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	lifecyclev1alpha1 "github.com/nodecycle/nodecycle/internal/apis/lifecycle/v1alpha1"
)

func requestsClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := lifecyclev1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithIndex(&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).Build()
}

func step(t *testing.T, d Drainer, now time.Time) PodState {
	t.Helper()
	res, err := d.Step(context.Background(), "n1", v1alpha1.DrainSpec{}, now)
	if err != nil {
		t.Fatalf("Step: %v", err)
	}
	if len(res.Waiting) != 1 {
		t.Fatalf("waiting %+v, want the one pod", res.Waiting)
	}
	return res.Waiting[0]
}

// The request path, one step at a time, as the cluster's controllers move
// the pod's Eviction on: one request per pod, then who holds the pod.
func TestRequestsFollowTheEviction(t *testing.T) {
	ctx := context.Background()
	pod := podOn("db-0", nil, nil)
	c := requestsClient(t, pod)
	d := Drainer{Reader: c, Writer: c, Requests: true}
	now := time.Now().Truncate(time.Second) // as the API stores times

	if got := step(t, d, now); got.Reason != ReasonRequested || got.Responder != nil {
		t.Fatalf("first step: %+v, want %q", got, ReasonRequested)
	}
	er := &lifecyclev1alpha1.EvictionRequest{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "demo", Name: "nodecycle-drain-uid-db-0"}, er); err != nil {
		t.Fatalf("the request: %v", err)
	}
	if er.Spec.Requester != Requester || er.Spec.Intent != lifecyclev1alpha1.IntentEviction || er.Spec.Target.Pod.UID != pod.UID || er.Labels[LabelNode] != "n1" {
		t.Fatalf("request %+v", er)
	}
	if got := step(t, d, now); !strings.Contains(got.Reason, "waiting for the cluster's evictionrequest-controller") {
		t.Fatalf("second step: %q", got.Reason)
	}
	var list lifecyclev1alpha1.EvictionRequestList
	if err := c.List(ctx, &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("requests after two steps: %d (%v), want 1", len(list.Items), err)
	}

	ev := &lifecyclev1alpha1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "pod-1-db-0", Labels: map[string]string{Requester: "requester"}},
		Spec:       lifecyclev1alpha1.EvictionSpec{Target: lifecyclev1alpha1.Target{Pod: &lifecyclev1alpha1.PodReference{Name: "db-0", UID: pod.UID}}},
		Status: lifecyclev1alpha1.EvictionStatus{
			TargetResponders: []lifecyclev1alpha1.TargetResponder{{Name: "acme.io/db-failover", State: lifecyclev1alpha1.ResponderActive}, {Name: lifecyclev1alpha1.ImperativeEvictor, State: lifecyclev1alpha1.ResponderInactive}},
			Responders: []lifecyclev1alpha1.ResponderStatus{{Name: "acme.io/db-failover", StartTime: &metav1.Time{Time: now.Add(-40 * time.Second)},
				HeartbeatTime: &metav1.Time{Time: now.Add(-3 * time.Second)}, Message: ptr.To("moving the primary")}},
		},
	}
	if err := c.Create(ctx, ev); err != nil {
		t.Fatal(err)
	}
	got := step(t, d, now)
	since, beat := now.Add(-40*time.Second).UTC().Format(time.RFC3339), now.Add(-3*time.Second).UTC().Format(time.RFC3339)
	if want := "responder acme.io/db-failover active since " + since + ", heartbeat " + beat + ": moving the primary"; got.Reason != want || got.Responder == nil || got.Responder.Name != "acme.io/db-failover" {
		t.Fatalf("held: %+v, want %q", got, want)
	}
	if got, want := got.Responder.Describe(now), "responder acme.io/db-failover active, 40s, heartbeat 3s ago: moving the primary"; got != want {
		t.Fatalf("Describe = %q, want %q", got, want)
	}

	ev.Status.Conditions = []metav1.Condition{{Type: lifecyclev1alpha1.ConditionTargetEvicted, Status: metav1.ConditionTrue, Reason: "PodDeleted", LastTransitionTime: metav1.Now()}}
	if err := c.Update(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if got := step(t, d, now); got.Reason != ReasonEvicted {
		t.Fatalf("evicted: %q", got.Reason)
	}
}

// Withdraw withdraws the node's open requests only; the next drain asks
// again; a request every responder gave up on is written anew.
func TestWithdrawAndAskAgain(t *testing.T) {
	ctx := context.Background()
	open, done := podOn("open", nil, nil), podOn("done", nil, nil)
	c := requestsClient(t, open, done)
	d := Drainer{Reader: c, Writer: c, Requests: true}
	if _, err := d.Step(ctx, "n1", v1alpha1.DrainSpec{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	evicted := &lifecyclev1alpha1.EvictionRequest{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "demo", Name: RequestName(done)}, evicted); err != nil {
		t.Fatal(err)
	}
	evicted.Status.Conditions = []metav1.Condition{{Type: lifecyclev1alpha1.ConditionTargetEvicted, Status: metav1.ConditionTrue, Reason: "PodDeleted", LastTransitionTime: metav1.Now()}}
	if err := c.Update(ctx, evicted); err != nil {
		t.Fatal(err)
	}
	pods, err := d.Withdraw(ctx, "n1")
	if err != nil || len(pods) != 1 || pods[0] != "demo/open" {
		t.Fatalf("Withdraw = %v, %v; want demo/open alone", pods, err)
	}
	if again, _ := d.Withdraw(ctx, "n1"); len(again) != 0 {
		t.Fatalf("a second Withdraw withdrew %v", again)
	}
	if err := c.Delete(ctx, done); err != nil {
		t.Fatal(err)
	}
	if got := step(t, d, time.Now()); got.Reason != ReasonRequested {
		t.Fatalf("after a withdrawal: %q, want asked again", got.Reason)
	}
	er := &lifecyclev1alpha1.EvictionRequest{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "demo", Name: RequestName(open)}, er); err != nil || er.Spec.Intent != lifecyclev1alpha1.IntentEviction {
		t.Fatalf("intent %q (%v), want Eviction again", er.Spec.Intent, err)
	}
	er.Status.Conditions = []metav1.Condition{{Type: lifecyclev1alpha1.ConditionFailed, Status: metav1.ConditionTrue, Reason: "NoFurtherResponder", Message: "no responder evicted it", LastTransitionTime: metav1.Now()}}
	if err := c.Update(ctx, er); err != nil {
		t.Fatal(err)
	}
	if got := step(t, d, time.Now()); !strings.Contains(got.Reason, "eviction failed (NoFurtherResponder: no responder evicted it), asking again") {
		t.Fatalf("failed request: %q", got.Reason)
	}
	if got := step(t, d, time.Now()); got.Reason != ReasonRequested {
		t.Fatalf("after a failed request: %q, want a new one", got.Reason)
	}
}

func TestNodeLabelValue(t *testing.T) {
	if got := NodeLabelValue("worker-1"); got != "worker-1" {
		t.Fatalf("%q", got)
	}
	long := strings.Repeat("n", 70) + ".example.com"
	if got := NodeLabelValue(long); len(got) > 63 || !strings.HasPrefix(got, "sha256-") || got != NodeLabelValue(long) {
		t.Fatalf("%q: want a stable hash within 63 characters", got)
	}
}

// I5: a request of the pod's name that is not nodecycle's (another
// requester, another target), with the node's label or without it, is
// left alone and named as what holds the pod; nodecycle's own request
// written without the label is adopted (labelled), not created again
// step after step.
func TestOnlyNodecyclesOwnRequestsAreFollowed(t *testing.T) {
	ctx := context.Background()
	pod := podOn("db-0", nil, nil)
	request := func(requester string, target types.UID, labelled bool) *lifecyclev1alpha1.EvictionRequest {
		er := &lifecyclev1alpha1.EvictionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: RequestName(pod)},
			Spec: lifecyclev1alpha1.EvictionRequestSpec{Requester: requester, Intent: lifecyclev1alpha1.IntentEviction,
				Target: lifecyclev1alpha1.Target{Pod: &lifecyclev1alpha1.PodReference{Name: pod.Name, UID: target}}}}
		if labelled {
			er.Labels = map[string]string{LabelNode: NodeLabelValue("n1")}
		}
		return er
	}
	for name, tc := range map[string]struct {
		er        *lifecyclev1alpha1.EvictionRequest
		want      string
		labelled  bool
		requester string
	}{
		"another requester, labelled":   {request("acme.io/other", pod.UID, true), "not nodecycle's for this pod", true, "acme.io/other"},
		"another requester, unlabelled": {request("acme.io/other", pod.UID, false), "not nodecycle's for this pod", false, "acme.io/other"},
		"another target, labelled":      {request(Requester, "uid-other", true), "not nodecycle's for this pod", true, Requester},
		"nodecycle's, unlabelled":       {request(Requester, pod.UID, false), ReasonRequested, true, Requester},
	} {
		c := requestsClient(t, pod, tc.er)
		d := Drainer{Reader: c, Writer: c, Requests: true}
		for range 2 {
			if got := step(t, d, time.Now()); !strings.Contains(got.Reason, tc.want) {
				t.Errorf("%s: %q, want %q", name, got.Reason, tc.want)
			}
		}
		got := &lifecyclev1alpha1.EvictionRequest{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(tc.er), got); err != nil {
			t.Fatal(err)
		}
		if _, labelled := got.Labels[LabelNode]; labelled != tc.labelled || got.Spec.Requester != tc.requester || got.Spec.Intent != lifecyclev1alpha1.IntentEviction {
			t.Errorf("%s: the request became %+v %+v", name, got.Labels, got.Spec)
		}
	}
}

// I5: a request refused for one pod (an admission rule of its namespace)
// is that pod's reason to wait; the other pods' requests are still made
// and the step itself does not fail.
func TestARefusedRequestHoldsOnlyItsPod(t *testing.T) {
	ctx := context.Background()
	refused, other := podOn("db-0", nil, nil), podOn("web-0", nil, nil)
	base := requestsClient(t, refused, other)
	c := interceptor.NewClient(base.(client.WithWatch), interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if er, ok := obj.(*lifecyclev1alpha1.EvictionRequest); ok && er.Spec.Target.Pod.Name == "db-0" {
			return apierrors.NewForbidden(lifecyclev1alpha1.GroupVersion.WithResource("evictionrequests").GroupResource(), er.Name, errors.New("denied by policy no-evictions"))
		}
		return c.Create(ctx, obj, opts...)
	}})
	d := Drainer{Reader: c, Writer: c, Requests: true}
	res, err := d.Step(ctx, "n1", v1alpha1.DrainSpec{}, time.Now())
	if err != nil {
		t.Fatalf("the step failed: %v", err)
	}
	reasons := map[string]string{}
	for _, p := range res.Waiting {
		reasons[p.Pod] = p.Reason
	}
	if !strings.Contains(reasons["demo/db-0"], "asking for its eviction failed") || reasons["demo/web-0"] != ReasonRequested {
		t.Fatalf("reasons %v", reasons)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "demo", Name: RequestName(other)}, &lifecyclev1alpha1.EvictionRequest{}); err != nil {
		t.Fatalf("the other pod's request: %v", err)
	}
}
