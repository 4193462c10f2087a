package controllers

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

// Metrics are the manager's Prometheus metrics.
type Metrics struct {
	operations    *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	drainDuration prometheus.Histogram
}

// NewMetrics creates the manager's metrics and registers them with reg.
// The reboot-required gauge is computed from the cache at scrape time.
func NewMetrics(reg prometheus.Registerer, cache client.Reader) *Metrics {
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
		reg.MustRegister(m.operations, m.duration, m.drainDuration, &rebootRequiredCollector{cache: cache})
	}
	return m
}

var rebootRequiredDesc = prometheus.NewDesc("nodecycle_nodes_reboot_required",
	"Nodes whose RebootRequired condition is True.", nil, nil)

type rebootRequiredCollector struct{ cache client.Reader }

func (c *rebootRequiredCollector) Describe(ch chan<- *prometheus.Desc) { ch <- rebootRequiredDesc }

func (c *rebootRequiredCollector) Collect(ch chan<- prometheus.Metric) {
	var list corev1.NodeList
	if err := c.cache.List(context.Background(), &list); err != nil {
		ch <- prometheus.NewInvalidMetric(rebootRequiredDesc, err)
		return
	}
	n := 0
	for i := range list.Items {
		if nodes.IsConditionTrue(&list.Items[i], v1alpha1.ConditionRebootRequired) {
			n++
		}
	}
	ch <- prometheus.MustNewConstMetric(rebootRequiredDesc, prometheus.GaugeValue, float64(n))
}
