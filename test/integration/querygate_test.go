package integration

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/gates"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework/peers"
)

var _ = Describe("PromQL gate", func() {
	It("waits while a query returns a value above its threshold for its `for`, holds while Prometheus does not answer, then goes ahead", func() {
		prom, err := peers.StartPrometheus()
		Expect(err).NotTo(HaveOccurred())
		defer prom.Stop()
		prom.Gauge.WithLabelValues("errors").Set(0.9)
		// A proxy in front of Prometheus plays an outage of it.
		target, err := url.Parse(prom.URL)
		Expect(err).NotTo(HaveOccurred())
		var down atomic.Bool
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
				return
			}
			httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
		}))
		defer proxy.Close()

		c := newCluster("gate-query", 1)
		node := c.node(1)
		Expect(env.Client.Create(c.ctx, &v1alpha1.NodeCyclePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "slo", Namespace: c.name},
			Spec: v1alpha1.NodeCyclePolicySpec{Gates: v1alpha1.Gates{BlockingQueries: []v1alpha1.QueryGate{{
				PrometheusURL: proxy.URL, Query: `test_gauge{series="errors"}`, Threshold: "0.5", For: &v1alpha1.Duration{Duration: 2 * time.Second},
			}}}},
		})).To(Succeed())
		gate := &v1alpha1.QueryGate{PrometheusURL: prom.URL, Query: `test_gauge{series="errors"}`, Threshold: "0.5", For: &v1alpha1.Duration{Duration: 2 * time.Second}}
		Eventually(func() ([]gates.Series, error) { return gates.BlockingSeries(c.ctx, nil, gate, time.Now()) }, 30*time.Second).ShouldNot(BeEmpty(),
			"the series above the threshold for 2s in Prometheus")
		c.agents[node].requireReboot()
		stop := startManager(c.managerFlags()...)
		defer stop()

		planned := func() *corev1.NodeCondition {
			return nodes.Condition(c.getNode(node), v1alpha1.ConditionMaintenancePlanned)
		}
		Eventually(func() string { return c.messageOf(node) }, time.Minute).Should(And(
			HavePrefix(`Waiting: query "test_gauge{series=\"errors\"}" on `+proxy.URL+" returns above 0.5 for 2s: "),
			HaveSuffix(`series="errors"} 0.9`)))
		Eventually(planned).Should(HaveField("Reason", string(v1alpha1.ReasonBlockingQuery)))
		Consistently(func() v1alpha1.Phase { return c.cycleOf(node).Status.Phase }, 2*time.Second).Should(Equal(v1alpha1.PhasePending))

		By("Prometheus does not answer: the gate stays closed, with its own reason")
		down.Store(true)
		prom.Gauge.WithLabelValues("errors").Set(0.1)
		Eventually(func() string { return c.messageOf(node) }, time.Minute).Should(ContainSubstring("503 Service Unavailable"))
		Eventually(planned).Should(HaveField("Reason", string(v1alpha1.ReasonQueryUnavailable)))
		Consistently(func() v1alpha1.Phase { return c.cycleOf(node).Status.Phase }, 2*time.Second).Should(Equal(v1alpha1.PhasePending))
		Expect(c.getNode(node).Spec.Unschedulable).To(BeFalse())

		By("Prometheus answers again and the value is below the threshold")
		down.Store(false)
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseSucceeded}}))
	})
})
