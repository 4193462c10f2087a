package inplace

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/inplace"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

func readyMachines(t *testing.T, ns, md string, n int) []clusterv1.Machine {
	t.Helper()
	var ms []clusterv1.Machine
	waitFor(t, 2*time.Minute, fmt.Sprintf("%d ready Machines of %s", n, md), func() (bool, string) {
		var err error
		ms, err = sim.ReadyMachines(context.Background(), k8s, k8s, ns, md, n)
		return err == nil, fmt.Sprint(err)
	})
	return ms
}

// updateCycle is the NodeCycle nodecycle opened for the update of machine.
func updateCycle(t *testing.T, ns, machine string) v1alpha1.NodeCycle {
	t.Helper()
	var list v1alpha1.NodeCycleList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{inplace.LabelMachine: machine}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("Machine %s has %d update NodeCycles, want 1", machine, len(list.Items))
	}
	return list.Items[0]
}

func upToDate(m *clusterv1.Machine) bool {
	c := conditionOf(m, clusterv1.MachineUpToDateCondition)
	return c != nil && c.Status == metav1.ConditionTrue
}

func conditionOf(m *clusterv1.Machine, t string) *metav1.Condition {
	for i := range m.Status.Conditions {
		if m.Status.Conditions[i].Type == t {
			return &m.Status.Conditions[i]
		}
	}
	return nil
}

func condition(m *clusterv1.Machine, t string) string {
	if c := conditionOf(m, t); c != nil {
		return fmt.Sprintf("%s=%s %s: %s", t, c.Status, c.Reason, c.Message)
	}
	return t + " unset"
}

func node0(t *testing.T, name string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, n); err != nil {
		t.Fatal(err)
	}
	return n
}

func bootID(t *testing.T, node string) string { return nodes.BootID(node0(t, node)) }

func write(t *testing.T, root, path, content string) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, root, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// waitFor polls ok until it holds, failing after timeout with its last word.
func waitFor(t *testing.T, timeout time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if err := env.Exited(); err != nil {
			t.Fatal(err)
		}
		var done bool
		if done, last = ok(); done {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %s\nCluster API's log:\n%s", what, last, capiLog("in-place", "InPlace", "CanUpdate", "Scal", "UpdateMachine"))
}

// eventTime is when the Event of reason on the Node was recorded (zero
// when it was not).
func eventTime(t *testing.T, node string, reason v1alpha1.Reason) time.Time {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Regarding.Kind == "Node" && e.Regarding.Name == node && e.Reason == string(reason) {
			return e.EventTime.Time
		}
	}
	return time.Time{}
}

// capiLog is the lines of Cluster API's log that hold one of words.
func capiLog(words ...string) string {
	var out []string
	for _, l := range strings.Split(env.Log("cluster-api-manager"), "\n") {
		if slices.ContainsFunc(words, func(w string) bool { return strings.Contains(l, w) }) {
			out = append(out, l)
		}
	}
	return tail(strings.Join(out, "\n"), 6000)
}

// available waits until the MachineDeployment's n Machines are Available to
// Cluster API: its rollout plans count on them.
func available(t *testing.T, ns, md string, n int) {
	t.Helper()
	waitFor(t, 2*time.Minute, "Available Machines", func() (bool, string) {
		var list clusterv1.MachineList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: md}); err != nil {
			return false, err.Error()
		}
		var not []string
		for _, m := range list.Items {
			if c := conditionOf(&m, clusterv1.AvailableCondition); c == nil || c.Status != metav1.ConditionTrue {
				not = append(not, fmt.Sprintf("%s: %+v", m.Name, m.Status.Conditions))
			}
		}
		return len(list.Items) == n && len(not) == 0, strings.Join(not, "\n")
	})
}
