package nodecycle

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

func TestGates(t *testing.T) {
	h := newHarness(t)
	nc := h.open()
	// Closed now (12:00 UTC), opens at 22:00.
	nc.Spec.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Start: "22:00", End: "04:00", TimeZone: "UTC"}}
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	res := h.settle()
	if got := h.cycle(); got.Status.Phase != v1alpha1.PhasePending || !strings.Contains(got.Status.Message, "Outside the maintenance windows") {
		t.Fatalf("phase %s (%s) outside the window", got.Status.Phase, got.Status.Message)
	}
	if res.RequeueAfter != 10*time.Hour {
		t.Errorf("requeue after %s, want 10h (when the window opens)", res.RequeueAfter)
	}
	h.clock.Step(res.RequeueAfter)
	h.settle()
	if p := h.cycle().Status.Phase; !p.Active() {
		t.Errorf("phase %s inside the window", p)
	}
}

// The NodeCycles that wait for a slot ask no server but the manager's
// cache: a blocking-alert gate is asked only once a slot is free.
func TestWaitingForASlotAsksNoAlertmanager(t *testing.T) {
	am, asked := quietAlertmanager(t)
	h := newHarness(t)
	other := testNodeObject("worker-2", "boot-1")
	other.Spec.Unschedulable = true
	other.Annotations[v1alpha1.AnnotationCordonedBy] = testNamespace + "/worker-2-old"
	h.create(other)
	nc := h.open()
	nc.Spec.BlockingAlerts = &v1alpha1.AlertGate{AlertmanagerURL: am.URL, Matchers: []string{`severity="critical"`}}
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		h.settle()
		h.clock.Step(slotPollInterval)
	}
	if n := asked(); n != 0 || h.cycle().Status.Phase != v1alpha1.PhasePending {
		t.Fatalf("Alertmanager asked %d times while no slot was free (phase %s)", n, h.cycle().Status.Phase)
	}
	if err := h.c.Delete(h.ctx, other); err != nil {
		t.Fatal(err)
	}
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	if asked() == 0 {
		t.Error("the alert gate was never asked once the slot was free")
	}
}

// The alert gate fails closed: an Alertmanager that cannot be asked (down,
// or answering an error) holds the NodeCycle in Pending and says why; the
// node is not touched until an answer says no blocking alert fires.
func TestAnAlertmanagerThatCannotBeAskedHoldsMaintenance(t *testing.T) {
	var healthy atomic.Bool
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("[]"))
	}))
	defer am.Close()
	h := newHarness(t)
	nc := h.open()
	nc.Spec.BlockingAlerts = &v1alpha1.AlertGate{AlertmanagerURL: am.URL, Matchers: []string{`severity="critical"`}}
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h.settle()
		h.clock.Step(gatePollInterval)
	}
	got := h.cycle()
	if got.Status.Phase != v1alpha1.PhasePending || got.Status.StartTime != nil || !strings.Contains(got.Status.Message, "503") {
		t.Fatalf("phase %s (%s); want Pending, no slot, saying why", got.Status.Phase, got.Status.Message)
	}
	if h.node().Spec.Unschedulable {
		t.Fatal("the node was cordoned while the alerts could not be checked")
	}
	healthy.Store(true)
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
}

// N3: a NodeCycle of a namespace other than the manager's has the manager
// ask only the Alertmanagers and Prometheus servers the operator allowed
// (--alertmanager-urls, --prometheus-urls): before, any URL was requested
// and its status code came back in the message.
func TestAnotherNamespaceAsksOnlyAllowedServers(t *testing.T) {
	for _, gate := range []struct {
		flag  string
		set   func(nc *v1alpha1.NodeCycle, url string)
		allow func(h *harness, url string)
	}{
		{"--alertmanager-urls", func(nc *v1alpha1.NodeCycle, url string) {
			nc.Spec.BlockingAlerts = &v1alpha1.AlertGate{AlertmanagerURL: url}
		},
			func(h *harness, url string) { h.cfg.AlertmanagerURLs = []string{url + "/"} }},
		{"--prometheus-urls", func(nc *v1alpha1.NodeCycle, url string) {
			nc.Spec.BlockingQueries = []v1alpha1.QueryGate{{PrometheusURL: url, Query: "up == 0"}}
		}, func(h *harness, url string) { h.cfg.PrometheusURLs = []string{url + "/"} }},
	} {
		server, asked := quietAlertmanager(t)
		h := newHarness(t)
		h.cfg.Namespace = "operators" // the NodeCycle's namespace is a tenant's
		h.restart()
		nc := h.open()
		gate.set(nc, server.URL)
		if err := h.c.Update(h.ctx, nc); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			h.settle()
			h.clock.Step(gatePollInterval)
		}
		if got := h.cycle(); asked() != 0 || got.Status.Phase != v1alpha1.PhasePending ||
			!strings.Contains(got.Status.Message, "may not be used by namespace "+testNamespace+": the manager's "+gate.flag+" allows none") {
			t.Fatalf("%s: asked %d times; phase %s: %s", gate.flag, asked(), got.Status.Phase, got.Status.Message)
		}
		gate.allow(h, server.URL)
		h.restart()
		h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
		if asked() == 0 {
			t.Errorf("%s: the allowed server was never asked", gate.flag)
		}
	}
}

// quietAlertmanager is an Alertmanager with no alert firing, and a
// Prometheus whose queries return nothing; asked says how often it was
// asked.
func quietAlertmanager(t *testing.T) (*httptest.Server, func() int32) {
	var asked atomic.Int32
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if strings.HasPrefix(r.URL.Path, "/api/v1/") {
			_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
			return
		}
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(am.Close)
	return am, asked.Load
}

// A query gate holds while its query returns a series above the threshold
// (the message names the query and the value), holds with its own reason
// while Prometheus answers an error (fail closed), and opens on an empty
// answer.
func TestAQueryGateHoldsAndFailsClosed(t *testing.T) {
	var answer atomic.Value
	answer.Store(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[1,"0.93"]},{"metric":{"job":"web"},"value":[1,"0.2"]}]}}`)
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if a := answer.Load().(string); a != "" {
			_, _ = w.Write([]byte(a))
			return
		}
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer prom.Close()
	h := newHarness(t)
	nc := h.open()
	nc.Spec.BlockingQueries = []v1alpha1.QueryGate{{PrometheusURL: prom.URL, Query: "error_ratio", Threshold: "0.5"}}
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	held := func(reason v1alpha1.Reason, message string) {
		t.Helper()
		for range 3 {
			h.settle()
			h.clock.Step(gatePollInterval)
		}
		got, planned := h.cycle(), nodes.Condition(h.node(), v1alpha1.ConditionMaintenancePlanned)
		if got.Status.Phase != v1alpha1.PhasePending || planned == nil || planned.Reason != string(reason) || got.Status.Message != message || h.node().Spec.Unschedulable {
			t.Fatalf("phase %s, MaintenancePlanned %+v (%s); want Pending, %s: %s, the node untouched", got.Status.Phase, planned, got.Status.Message, reason, message)
		}
	}
	held(v1alpha1.ReasonBlockingQuery, `Waiting: query "error_ratio" on `+prom.URL+` returns above 0.5: {job="api"} 0.93`)
	answer.Store("")
	held(v1alpha1.ReasonQueryUnavailable, `Waiting: query "error_ratio" on `+prom.URL+`: answered 503 Service Unavailable, not a Prometheus query result`)
	answer.Store(`{"status":"success","data":{"resultType":"vector","result":[]}}`)
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
}
