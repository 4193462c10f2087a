package drain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

func owned(kind string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{Kind: kind, Name: "x", Controller: ptr.To(true)}}
}

func TestSkipAndRefuse(t *testing.T) {
	emptyDir := []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	cases := []struct {
		name       string
		pod        corev1.Pod
		opts       v1alpha1.DrainSpec
		wantSkip   bool
		wantRefuse string
	}{
		{"mirror pod", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{mirrorPodAnnotation: "x"}}}, v1alpha1.DrainSpec{}, true, ""},
		{"daemonset pod", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: owned("DaemonSet")}}, v1alpha1.DrainSpec{}, true, ""},
		{"drain skip label (the manager's own pod)", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.LabelDrain: "skip"}, OwnerReferences: owned("ReplicaSet")}}, v1alpha1.DrainSpec{}, true, ""},
		{"finished pod", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, v1alpha1.DrainSpec{}, true, ""},
		{"replicaset pod", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: owned("ReplicaSet")}}, v1alpha1.DrainSpec{}, false, ""},
		{"bare pod refused", corev1.Pod{}, v1alpha1.DrainSpec{}, false, "not managed by a controller"},
		{"bare pod allowed", corev1.Pod{}, v1alpha1.DrainSpec{EvictUnmanagedPods: true}, false, ""},
		{"emptyDir refused", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: owned("ReplicaSet")}, Spec: corev1.PodSpec{Volumes: emptyDir}}, v1alpha1.DrainSpec{}, false, "emptyDir volume scratch"},
		{"emptyDir allowed", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: owned("ReplicaSet")}, Spec: corev1.PodSpec{Volumes: emptyDir}}, v1alpha1.DrainSpec{DeleteEmptyDirData: true}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := skip(&tc.pod); got != tc.wantSkip {
				t.Fatalf("skip = %t, want %t", got, tc.wantSkip)
			}
			if tc.wantSkip {
				return
			}
			got := refuse(&tc.pod, tc.opts)
			if (tc.wantRefuse == "") != (got == "") || (tc.wantRefuse != "" && !strings.Contains(got, tc.wantRefuse)) {
				t.Fatalf("refuse = %q, want %q", got, tc.wantRefuse)
			}
		})
	}
}

func TestSummaryIsStableAndBounded(t *testing.T) {
	r := Result{Waiting: []PodState{{Pod: "a/1", Reason: "terminating"}, {Pod: "a/2", Reason: "blocked by PDB a/pdb allows 0 disruptions"}, {Pod: "a/3", Reason: "terminating"}}}
	if got, want := r.Summary(2), "a/1 (terminating), a/2 (blocked by PDB a/pdb allows 0 disruptions), and 1 more"; got != want {
		t.Fatalf("Summary = %q, want %q", got, want)
	}
	if r.Done() {
		t.Fatal("a result with waiting pods is not done")
	}
}

// An eviction refused with an error other than a PDB's 429 (two PDBs over
// one pod answer 500) is a waiting reason of that pod, not an error of the
// step: the other pods are still evicted, and the caller's drain timeout
// still runs.
func TestAnEvictionErrorIsAWaitingReason(t *testing.T) {
	pods := []client.Object{
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "a", OwnerReferences: owned("ReplicaSet")}, Spec: corev1.PodSpec{NodeName: "n1"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "b", OwnerReferences: owned("ReplicaSet")}, Spec: corev1.PodSpec{NodeName: "n1"}},
	}
	c := fake.NewClientBuilder().WithObjects(pods...).
		WithIndex(&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).
		WithInterceptorFuncs(interceptor.Funcs{SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj client.Object, s client.Object, opts ...client.SubResourceCreateOption) error {
			if obj.GetName() == "a" {
				return apierrors.NewInternalError(errors.New("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."))
			}
			return c.SubResource(sub).Create(ctx, obj, s, opts...)
		}}).Build()
	d := Drainer{Reader: c, Writer: c}
	res, err := d.Step(context.Background(), "n1", v1alpha1.DrainSpec{}, time.Now())
	if err != nil {
		t.Fatalf("Step: %v", err)
	}
	if len(res.Waiting) != 2 || res.Waiting[0].Pod != "demo/a" || !strings.Contains(res.Waiting[0].Reason, "more than one PodDisruptionBudget") ||
		res.Waiting[1].Reason != ReasonEvicted {
		t.Fatalf("waiting %+v: want demo/a refused with the API server's reason and demo/b evicted", res.Waiting)
	}
}

func podOn(name string, lbls map[string]string, deleted *time.Time) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name, Labels: lbls, OwnerReferences: owned("ReplicaSet"), UID: "uid-" + types.UID(name)},
		Spec: corev1.PodSpec{NodeName: "n1"}}
	if deleted != nil {
		p.DeletionTimestamp = &metav1.Time{Time: *deleted}
		p.Finalizers = []string{"test/keep"} // the fake client keeps a deleted pod only with a finalizer
	}
	return p
}

func fakeWithPods(pods ...client.Object) client.Client {
	return fake.NewClientBuilder().WithObjects(pods...).
		WithIndex(&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).Build()
}

// The escape hatches: a pod deleted long ago is not waited for; only the
// pods of the drain pod selector are evicted.
func TestEscapeHatches(t *testing.T) {
	now := time.Now()
	longAgo, justNow := now.Add(-10*time.Minute), now.Add(-10*time.Second)
	c := fakeWithPods(podOn("stuck", nil, &longAgo), podOn("leaving", nil, &justNow), podOn("app", map[string]string{"drain": "yes"}, nil), podOn("other", nil, nil))
	d := Drainer{Reader: c, Writer: c}

	res, err := d.Step(context.Background(), "n1", v1alpha1.DrainSpec{SkipWaitForDeleteTimeoutSeconds: 300}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Summary(10); strings.Contains(got, "demo/stuck") || !strings.Contains(got, "demo/leaving (terminating)") {
		t.Fatalf("with a 300 s skip-wait, waiting for %s", got)
	}
	res, err = d.Step(context.Background(), "n1", v1alpha1.DrainSpec{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Summary(10); !strings.Contains(got, "demo/stuck (terminating)") {
		t.Fatalf("without skip-wait, waiting for %s", got)
	}

	c2 := fakeWithPods(podOn("app", map[string]string{"drain": "yes"}, nil), podOn("other", nil, nil))
	d2 := Drainer{Reader: c2, Writer: c2}
	res, err = d2.Step(context.Background(), "n1", v1alpha1.DrainSpec{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"drain": "yes"}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Waiting) != 1 || res.Waiting[0].Pod != "demo/app" || res.Waiting[0].Reason != ReasonEvicted || res.Evictable != 1 {
		t.Fatalf("with a pod selector: %+v", res)
	}
}

// At the drain timeout with deleteAfterTimeout, the pods left are deleted,
// not the ones already going and not the ones the settings refuse.
func TestDeleteRemaining(t *testing.T) {
	now := time.Now()
	bare := podOn("bare", nil, nil)
	bare.OwnerReferences = nil
	c := fakeWithPods(podOn("blocked", nil, nil), podOn("going", nil, &now), bare)
	d := Drainer{Reader: c, Writer: c}
	deleted, err := d.DeleteRemaining(context.Background(), "n1", v1alpha1.DrainSpec{GracePeriodSeconds: 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0] != "demo/blocked" {
		t.Fatalf("deleted %v, want demo/blocked", deleted)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "demo", Name: "blocked"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
		t.Fatalf("demo/blocked is still there: %v", err)
	}
}

// Rules: Skip leaves a pod, WaitCompleted waits without evicting, and a
// higher order waits for the lower groups.
func TestDrainRules(t *testing.T) {
	c := fakeWithPods(podOn("keep", map[string]string{"rule": "skip"}, nil), podOn("job", map[string]string{"rule": "wait"}, nil),
		podOn("db", map[string]string{"rule": "late"}, nil), podOn("web", nil, nil))
	d := Drainer{Reader: c, Writer: c, Rules: func(p *corev1.Pod) Rule {
		switch p.Labels["rule"] {
		case "skip":
			return Rule{Behavior: BehaviorSkip, Source: "s"}
		case "wait":
			return Rule{Behavior: BehaviorWaitCompleted, Order: 7, Source: "w"} // always order 0
		case "late":
			return Rule{Behavior: BehaviorDrain, Order: 10, Source: "l"}
		}
		return Rule{Behavior: BehaviorDrain}
	}}
	res, err := d.Step(context.Background(), "n1", v1alpha1.DrainSpec{EvictUnmanagedPods: true, DeleteEmptyDirData: true, GracePeriodSeconds: -1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, w := range res.Waiting {
		got[w.Pod] = w.Reason
	}
	want := map[string]string{
		"demo/job": "waiting for it to complete (w)",
		"demo/db":  "drained after the pods of order 0 (l)",
		"demo/web": ReasonEvicted,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("waiting %v, want %v", got, want)
	}
	deleted, err := d.DeleteRemaining(context.Background(), "n1", v1alpha1.DrainSpec{EvictUnmanagedPods: true, DeleteEmptyDirData: true, GracePeriodSeconds: -1})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(deleted) != "[demo/db]" {
		t.Fatalf("deleted %v at the timeout: want db only (keep is skipped, job never deleted, web already evicted)", deleted)
	}
}
