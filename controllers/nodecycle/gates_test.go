package nodecycle

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
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
// ask only the Alertmanagers the operator allowed (--alertmanager-urls):
// before, any URL was requested and its status code came back in the
// message.
func TestAnotherNamespaceAsksOnlyAllowedAlertmanagers(t *testing.T) {
	am, asked := quietAlertmanager(t)
	h := newHarness(t)
	h.cfg.Namespace = "operators" // the NodeCycle's namespace is a tenant's
	h.restart()
	nc := h.open()
	nc.Spec.BlockingAlerts = &v1alpha1.AlertGate{AlertmanagerURL: am.URL}
	if err := h.c.Update(h.ctx, nc); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h.settle()
		h.clock.Step(gatePollInterval)
	}
	if got := h.cycle(); asked() != 0 || got.Status.Phase != v1alpha1.PhasePending ||
		!strings.Contains(got.Status.Message, "may not be used by namespace "+testNamespace+": the manager's --alertmanager-urls allows none") {
		t.Fatalf("Alertmanager asked %d times; phase %s: %s", asked(), got.Status.Phase, got.Status.Message)
	}
	h.cfg.AlertmanagerURLs = []string{am.URL + "/"}
	h.restart()
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	if asked() == 0 {
		t.Error("the allowed Alertmanager was never asked")
	}
}

// quietAlertmanager is an Alertmanager with no alert firing; asked says
// how often it was asked.
func quietAlertmanager(t *testing.T) (*httptest.Server, func() int32) {
	var asked atomic.Int32
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(am.Close)
	return am, asked.Load
}
