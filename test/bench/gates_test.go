package bench

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework/peers"
)

// BenchmarkSentinelToCordonQueryGate is the seed's scenario with a policy
// whose PromQL gate asks a real Prometheus (Debian's, scraping a test
// exporter) at each admission, with a `for`: the admission's cost of one
// query_range; it opens (the query returns nothing above the threshold).
func BenchmarkSentinelToCordonQueryGate(b *testing.B) {
	prom, err := peers.StartPrometheus()
	if err != nil {
		b.Fatal(err)
	}
	defer prom.Stop()
	prom.Gauge.WithLabelValues("errors").Set(0.001)
	sentinelToCordon(b, func(ctx context.Context, run string) {
		policy := &v1alpha1.NodeCyclePolicy{ObjectMeta: metav1.ObjectMeta{Name: "slo", Namespace: run},
			Spec: v1alpha1.NodeCyclePolicySpec{Gates: v1alpha1.Gates{BlockingQueries: []v1alpha1.QueryGate{{
				PrometheusURL: prom.URL, Query: `test_gauge{series="errors"}`, Threshold: "0.01", For: &v1alpha1.Duration{Duration: 5 * time.Minute},
			}}}}}
		if err := env.Client.Create(ctx, policy); err != nil {
			b.Fatal(err)
		}
	})
}
