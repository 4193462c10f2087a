package nodecycle

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/gates"
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

var skippedDesc = prometheus.NewDesc("nodecycle_nodes_skipped",
	"Nodes left alone on their current boot after a drain that could not finish (drain.failure SkipNode; MaintenanceInProgress reason NodeSkipped), per cluster.",
	[]string{"cluster"}, nil)

// rebootRequiredCollector computes the per-cluster node gauges from the
// Node caches at scrape time.
type rebootRequiredCollector struct{ clusters cluster.Clusters }

func (c *rebootRequiredCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rebootRequiredDesc
	ch <- quarantinedDesc
	ch <- skippedDesc
}

func (c *rebootRequiredCollector) Collect(ch chan<- prometheus.Metric) {
	byCluster, err := c.clusters.Nodes(context.Background())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(rebootRequiredDesc, err)
		return
	}
	for cluster, list := range byCluster {
		required, held := 0, map[v1alpha1.Reason]int{}
		for i := range list {
			if nodes.IsConditionTrue(&list[i], v1alpha1.ConditionRebootRequired) {
				required++
			}
			held[cycles.Held(&list[i])]++
		}
		ch <- prometheus.MustNewConstMetric(rebootRequiredDesc, prometheus.GaugeValue, float64(required), cluster)
		ch <- prometheus.MustNewConstMetric(quarantinedDesc, prometheus.GaugeValue, float64(held[v1alpha1.ReasonQuarantined]), cluster)
		ch <- prometheus.MustNewConstMetric(skippedDesc, prometheus.GaugeValue, float64(held[v1alpha1.ReasonNodeSkipped]), cluster)
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

var gateClosedDesc = prometheus.NewDesc("nodecycle_gate_closed",
	"1 while a time gate holds new maintenance, else 0: gate freeze (policy \"\": the manager's --freeze, for every cluster) or window (the policy's maintenance windows are closed).",
	[]string{"gate", "policy"}, nil)

var untilOpeningDesc = prometheus.NewDesc("nodecycle_seconds_until_next_opening",
	"Seconds until a time gate opens again (the end of the freeze, the next maintenance window); 0 while it is open.",
	[]string{"gate", "policy"}, nil)

// RegisterGateMetrics registers the gauges of the time gates (freezes and
// maintenance windows), computed at scrape time from the manager's freezes
// and the NodeCyclePolicies read from reader (the manager's cache).
func RegisterGateMetrics(reg prometheus.Registerer, reader client.Reader, freezes []v1alpha1.Freeze, clk clock.PassiveClock) {
	reg.MustRegister(&gateCollector{reader: reader, freezes: freezes, clock: clk})
}

type gateCollector struct {
	reader  client.Reader
	freezes []v1alpha1.Freeze
	clock   clock.PassiveClock
}

func (c *gateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- gateClosedDesc
	ch <- untilOpeningDesc
}

func (c *gateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.clock.Now()
	gauge := func(gate, policy string, closed bool, opens time.Time) {
		v, until := 0.0, 0.0
		if closed {
			v, until = 1, max(opens.Sub(now).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(gateClosedDesc, prometheus.GaugeValue, v, gate, policy)
		ch <- prometheus.MustNewConstMetric(untilOpeningDesc, prometheus.GaugeValue, until, gate, policy)
	}
	if len(c.freezes) > 0 {
		frozen, until, _, _ := gates.Frozen(c.freezes, now)
		gauge("freeze", "", frozen, until)
	}
	if c.reader == nil {
		return
	}
	var policies v1alpha1.NodeCyclePolicyList
	if err := c.reader.List(context.Background(), &policies); err != nil {
		// Before the cache has started (a scrape right after the start):
		// the policies' gauges come with the next scrape; an invalid
		// metric would fail the whole scrape.
		return
	}
	for _, p := range policies.Items {
		name := p.Namespace + "/" + p.Name
		if len(p.Spec.Freezes) > 0 {
			// An invalid freeze holds too (its NodeCycles fail): closed.
			frozen, until, _, err := gates.Frozen(p.Spec.Freezes, now)
			gauge("freeze", name, frozen || err != nil, until)
		}
		if len(p.Spec.MaintenanceWindows) > 0 {
			open, next, err := gates.InWindow(p.Spec.MaintenanceWindows, now)
			gauge("window", name, !open || err != nil, next)
		}
	}
}
