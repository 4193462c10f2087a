package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

type countingRebooter struct{ n int }

func (r *countingRebooter) Reboot(context.Context) error { r.n++; return nil }

// An ack the API server made but answered with an error (a 500 or a
// timeout after the write, seen by the API-fault run) is this agent's:
// the reboot follows when the Node shows it, once. Before, the agent saw
// its own ack as one already carried out and never rebooted.
func TestAnAckMadeDespiteAnErrorIsCarriedOut(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Annotations: map[string]string{v1alpha1.AnnotationRebootRequest: "r1"}},
		Spec: corev1.NodeSpec{Unschedulable: true}}
	cs := signedClientset(node)
	for _, fail := range []error{
		apierrors.NewInternalError(errors.New("injected after the write")),
		apierrors.NewTimeoutError("injected after the write", 0),
	} {
		applied := false
		cs.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			if applied {
				return false, nil, nil
			}
			applied = true
			// The API server makes the ack (the agent's merge patch) ...
			gvr := schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
			n, err := cs.Tracker().Get(gvr, "", "worker-1")
			if err != nil {
				t.Fatal(err)
			}
			made := n.(*corev1.Node).DeepCopy()
			made.Annotations[v1alpha1.AnnotationRebootAck] = "r1"
			if err := cs.Tracker().Update(gvr, made, ""); err != nil {
				t.Fatal(err)
			}
			// ... and the agent hears an error.
			return true, nil, fail
		})
		rebooter := &countingRebooter{}
		a := &Agent{NodeName: "worker-1", Client: cs, Rebooter: rebooter, Namespace: testNamespace, Metrics: NewMetrics(nil)}
		a.lister = func() (*corev1.Node, error) {
			return cs.CoreV1().Nodes().Get(context.Background(), "worker-1", metav1.GetOptions{})
		}
		ctx := context.Background()
		a.handleRebootRequest(ctx, logr.Discard()) // the ack is made, the answer is an error
		if rebooter.n != 0 {
			t.Fatalf("%v: rebooted on an error", fail)
		}
		n, _ := a.lister()
		if n.Annotations[v1alpha1.AnnotationRebootAck] != "r1" {
			t.Fatalf("%v: the ack was not made: %v", fail, n.Annotations)
		}
		a.handleRebootRequest(ctx, logr.Discard()) // the Node event of the ack
		a.handleRebootRequest(ctx, logr.Discard()) // any later event
		if rebooter.n != 1 {
			t.Fatalf("%v: %d reboots after an ack made despite an error, want 1", fail, rebooter.n)
		}
		// An ack that failed (not made) and then succeeded is carried out once.
		a.unsure = ""
		n.Annotations[v1alpha1.AnnotationRebootRequest] = "r2"
		sign(n)
		if _, err := cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		a.unsure = "r2" // as after a 500 that made nothing
		a.handleRebootRequest(ctx, logr.Discard())
		a.handleRebootRequest(ctx, logr.Discard())
		if rebooter.n != 2 {
			t.Fatalf("%v: %d reboots after a retried ack, want 2 (one each)", fail, rebooter.n)
		}
		// The next request starts clean.
		n.Annotations[v1alpha1.AnnotationRebootRequest], n.Annotations[v1alpha1.AnnotationRebootAck] = "r1", ""
		delete(n.Annotations, v1alpha1.AnnotationRebootAck)
		sign(n)
		if _, err := cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		cs.ReactionChain = cs.ReactionChain[1:]
	}
}

// H10: a request made under nodecycle's own cordon is carried out only
// while that cordon is on the node; a request made under someone else's
// cordon (nodecycle found the node cordoned) names none.
func TestARequestUnderNodecyclesCordonNeedsThatCordon(t *testing.T) {
	for _, tc := range []struct {
		name, request, cordonedBy string
		want                      Decision
	}{
		{"nodecycle's cordon for this request", "team-a/worker-1-abc-1/uid-1", "team-a/worker-1-abc-1", Reboot},
		{"nodecycle's mark removed (an admin took the node over)", "team-a/worker-1-abc-1/uid-1", "", Refuse},
		{"another NodeCycle's cordon", "team-a/worker-1-abc-1/uid-1", "team-a/worker-1-abc-2", Refuse},
		{"a request under someone else's cordon", "uid-1", "", Reboot},
	} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Annotations: map[string]string{v1alpha1.AnnotationRebootRequest: tc.request}},
			Spec: corev1.NodeSpec{Unschedulable: true}}
		if tc.cordonedBy != "" {
			node.Annotations[v1alpha1.AnnotationCordonedBy] = tc.cordonedBy
		}
		if _, got := Decide(node); got != tc.want {
			t.Errorf("%s: decision %d, want %d", tc.name, got, tc.want)
		}
	}
}
