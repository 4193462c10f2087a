package nodecycle

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers/node"
	"github.com/nodecycle/nodecycle/internal/cycles"
)

// request creates an on-demand request for node, resolved as the local
// mode's manager does.
func (h *harness) request(nodeName string, req v1alpha1.RequestSpec) {
	h.t.Helper()
	h.r.Requests = &node.Reconciler{Opener: cycles.Opener{Client: h.c, APIReader: h.c, Recorder: h.events, Clock: h.clock, Config: h.cfg}}
	h.create(&v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testCycle, UID: "uid-1"},
		Spec: v1alpha1.NodeCycleSpec{NodeName: nodeName, Request: &req}})
}

// A request reboots a node that does not ask for a reboot, with the
// manager's settings, through the same slot and proof of reboot.
func TestOnDemandRequestRebootsANodeThatNeedsNone(t *testing.T) {
	h := newHarness(t)
	h.editNode(func(n *corev1.Node) { setCondition(n, v1alpha1.ConditionRebootRequired, corev1.ConditionFalse) })
	h.request(testNode, v1alpha1.RequestSpec{Reason: "kernel CVE", RequestedBy: "alice"})
	h.runUntil(v1alpha1.PhaseWaitingForNodeReady)
	spec := h.cycle().Spec
	if !slices.Equal(spec.Strategies, []v1alpha1.Strategy{v1alpha1.StrategyReboot}) || spec.BootID != "boot-1" || spec.Attempt != 1 ||
		spec.RebootTimeout.Duration != h.cfg.RebootTimeout || spec.Request == nil || spec.Request.RequestedBy != "alice" {
		t.Fatalf("spec not filled in as an automatic NodeCycle's: %+v", spec)
	}
	h.boot("boot-2")
	h.runUntil(v1alpha1.PhaseSucceeded)
	if r := h.reasons(); !slices.Contains(r, "NodeCycleCreated") || !slices.Contains(r, "RebootVerified") {
		t.Fatalf("events: %v", r)
	}
}

// Requests for a node that does not exist, an excluded node, a strategy
// the node's ladder does not name, or another cluster are refused, with a
// message, and nothing is done to any node.
func TestOnDemandRequestRefused(t *testing.T) {
	for _, tc := range []struct {
		name, node string
		req        v1alpha1.RequestSpec
		setup      func(h *harness)
		want       string
	}{
		{name: "no such node", node: "worker-9", want: "node worker-9 does not exist"},
		{name: "excluded", node: testNode, want: "Node has the label nodecycle.io/exclude=true", setup: func(h *harness) {
			h.editNode(func(n *corev1.Node) { n.Labels = map[string]string{v1alpha1.LabelExclude: "true"} })
		}},
		{name: "strategy not allowed", node: testNode, req: v1alpha1.RequestSpec{Strategy: v1alpha1.StrategyPowerCycle},
			want: "strategy power-cycle is not allowed for node worker-1: its ladder is [reboot] (from the manager's default)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if tc.setup != nil {
				tc.setup(h)
			}
			h.request(tc.node, tc.req)
			h.settle()
			nc := h.cycle()
			if nc.Status.Phase != v1alpha1.PhaseFailed || nc.Status.Reason != v1alpha1.ReasonRequestRefused || !strings.Contains(nc.Status.Message, tc.want) {
				t.Fatalf("want Failed RequestRefused %q, got %s %s %q", tc.want, nc.Status.Phase, nc.Status.Reason, nc.Status.Message)
			}
			if n := h.node(); n.Spec.Unschedulable || len(n.Annotations) > 1 {
				t.Fatalf("the node was touched: %+v", n.Annotations)
			}
			if r := h.reasons(); !slices.Equal(r, []string{"RequestRefused"}) {
				t.Fatalf("events: %v", r)
			}
		})
	}
}

// A request for a node that has an open NodeCycle is refused: with more
// than one slot, two operations could run on one node at once.
func TestOnDemandRequestForANodeWithAnOpenNodeCycle(t *testing.T) {
	h := newHarness(t)
	h.cfg.MaxConcurrent = 2
	h.restart()
	spec := h.cfg.CycleSpec(testNode, nil)
	spec.BootID, spec.Attempt = "boot-1", 1
	h.create(&v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "automatic", UID: "uid-0"}, Spec: spec})
	h.request(testNode, v1alpha1.RequestSpec{})
	h.settle()
	if nc := h.cycle(); nc.Status.Reason != v1alpha1.ReasonRequestRefused || !strings.Contains(nc.Status.Message, "node worker-1 already has NodeCycle automatic (phase new)") {
		t.Fatalf("%s %s %q", nc.Status.Phase, nc.Status.Reason, nc.Status.Message)
	}
}
