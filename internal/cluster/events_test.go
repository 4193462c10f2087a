package cluster

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A connected cluster gets its Event broadcaster (a client, goroutines and
// a queue) only with its first Event: most never get one.
func TestWorkloadRecorderIsMadeAtTheFirstEvent(t *testing.T) {
	var r recorders
	defer r.stop()
	key := client.ObjectKey{Namespace: "fleet", Name: "quiet"}
	rec := r.lazy(key, &rest.Config{Host: "http://127.0.0.1:1"})
	if len(r.byCluster) != 0 {
		t.Fatalf("a broadcaster was made before any Event: %v", r.byCluster)
	}
	rec.Eventf(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, nil, corev1.EventTypeNormal, "Test", "Test", "first")
	rec.Eventf(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, nil, corev1.EventTypeNormal, "Test", "Test", "second")
	if len(r.byCluster) != 1 || r.byCluster[key] == nil {
		t.Fatalf("want one broadcaster for %s after its Events, got %v", key, r.byCluster)
	}
}
