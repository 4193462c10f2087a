package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
)

// Metrics are the agent's Prometheus metrics.
type Metrics struct {
	rebootRequired prometheus.Gauge
	reboots        *prometheus.CounterVec
	apiErrors      prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg when not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rebootRequired: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nodecycle_agent_reboot_required",
			Help: "1 when this node needs a reboot, 0 when not, -1 when the check failed.",
		}),
		reboots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodecycle_agent_reboots_total",
			Help: "Reboot requests by result: started, error, refused (the node was not cordoned, or the request was not signed by the manager).",
		}, []string{"result"}),
		apiErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodecycle_agent_api_errors_total",
			Help: "Writes to the API server that failed.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.rebootRequired, m.reboots, m.apiErrors)
	}
	return m
}

func (m *Metrics) observe(c corev1.NodeCondition) {
	switch c.Status {
	case corev1.ConditionTrue:
		m.rebootRequired.Set(1)
	case corev1.ConditionFalse:
		m.rebootRequired.Set(0)
	default:
		m.rebootRequired.Set(-1)
	}
}
