package cluster

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// N10: a /metrics scrape reads every cached Node of every cluster; it must
// not deep-copy them all (at 1,000 clusters of 50 Nodes, 50,000 copies per
// scrape).
func TestNodesAreTheCachesOwnObjects(t *testing.T) {
	copied := false
	c := fake.NewClientBuilder().WithObjects(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}}).
		WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			copied = !slices.Contains(opts, client.ListOption(client.UnsafeDisableDeepCopy))
			return c.List(ctx, list, opts...)
		}}).Build()
	byCluster, err := Local{W: Workload{Client: c}}.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(byCluster[""]) != 1 {
		t.Fatalf("Nodes: %v", byCluster)
	}
	if copied {
		t.Fatal("the Nodes were listed with deep copies")
	}
}
