package nodecycle

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// Metrics are the manager's Prometheus metrics.
type Metrics struct {
	operations    *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	drainDuration prometheus.Histogram
}

// NewMetrics creates the manager's metrics and registers them with reg.
// The reboot-required gauge is computed from the clusters' Node caches at
// scrape time.
func NewMetrics(reg prometheus.Registerer, clusters cluster.Clusters) *Metrics {
	m := &Metrics{
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodecycle_operations_total",
			Help: "Finished NodeCycles by strategy and result (Succeeded, Failed, Skipped).",
		}, []string{"strategy", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nodecycle_operation_duration_seconds",
			Help:    "Time from taking the maintenance slot to the end of a NodeCycle.",
			Buckets: prometheus.ExponentialBuckets(5, 2, 12),
		}, []string{"strategy", "result"}),
		drainDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nodecycle_drain_duration_seconds",
			Help:    "Time a successful drain took.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.operations, m.duration, m.drainDuration, &rebootRequiredCollector{clusters: clusters})
	}
	return m
}

var rebootRequiredDesc = prometheus.NewDesc("nodecycle_nodes_reboot_required",
	"Nodes whose RebootRequired condition is True, per cluster (namespace/name of the Cluster API Cluster; empty for the cluster the manager runs in).",
	[]string{"cluster"}, nil)

var quarantinedDesc = prometheus.NewDesc("nodecycle_nodes_quarantined",
	"Nodes quarantined in a reboot loop (MaintenanceInProgress reason Quarantined), per cluster.",
	[]string{"cluster"}, nil)

// rebootRequiredCollector computes the per-cluster node gauges from the
// Node caches at scrape time.
type rebootRequiredCollector struct{ clusters cluster.Clusters }

func (c *rebootRequiredCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rebootRequiredDesc
	ch <- quarantinedDesc
}

func (c *rebootRequiredCollector) Collect(ch chan<- prometheus.Metric) {
	byCluster, err := c.clusters.Nodes(context.Background())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(rebootRequiredDesc, err)
		return
	}
	for cluster, list := range byCluster {
		required, quarantined := 0, 0
		for i := range list {
			if nodes.IsConditionTrue(&list[i], v1alpha1.ConditionRebootRequired) {
				required++
			}
			if cycles.Quarantined(&list[i]) {
				quarantined++
			}
		}
		ch <- prometheus.MustNewConstMetric(rebootRequiredDesc, prometheus.GaugeValue, float64(required), cluster)
		ch <- prometheus.MustNewConstMetric(quarantinedDesc, prometheus.GaugeValue, float64(quarantined), cluster)
	}
}

// finished counts a NodeCycle that reached a terminal phase, and how long
// it held its slot.
func (m *Metrics) finished(strategy v1alpha1.Strategy, nc *v1alpha1.NodeCycle) {
	st := nc.Status
	m.operations.WithLabelValues(string(strategy), string(st.Phase)).Inc()
	if st.StartTime != nil && st.CompletionTime != nil {
		m.duration.WithLabelValues(string(strategy), string(st.Phase)).Observe(st.CompletionTime.Sub(st.StartTime.Time).Seconds())
	}
}
