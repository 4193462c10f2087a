package agent

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// FuzzDecide: whatever the Node's annotations say, the agent reboots only
// for a request it has not acknowledged, on a cordoned node, and the id it
// acknowledges is the request's. Seeds in testdata/fuzz/FuzzDecide.
func FuzzDecide(f *testing.F) {
	f.Add("req-1", "", true)
	f.Add("req-1", "req-1", true)
	f.Add("req-2", "req-1", false)
	f.Add("", "req-1", true)
	f.Fuzz(func(t *testing.T, request, ack string, cordoned bool) {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}}, Spec: corev1.NodeSpec{Unschedulable: cordoned}}
		if request != "" {
			node.Annotations[v1alpha1.AnnotationRebootRequest] = request
		}
		if ack != "" {
			node.Annotations[v1alpha1.AnnotationRebootAck] = ack
		}
		id, d := Decide(node)
		if id != request {
			t.Fatalf("id %q, want the request %q", id, request)
		}
		if d == Reboot && (request == "" || request == ack || !cordoned) {
			t.Fatalf("reboot for request %q, ack %q, cordoned %t", request, ack, cordoned)
		}
		if d == Reboot && strings.Contains(request, "/") {
			t.Fatalf("reboot for request %q, which names a cordon the node does not carry", request)
		}
		if d == Ignore && request != "" && request != ack {
			t.Fatalf("an unacknowledged request %q was ignored", request)
		}
	})
}
