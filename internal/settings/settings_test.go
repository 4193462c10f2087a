package settings

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

func TestBackoffDoublesUpToTheLimit(t *testing.T) {
	c := DefaultConfig()
	c.RetryBackoff, c.MaxRetryBackoff = time.Minute, 5*time.Minute
	want := map[int32]time.Duration{2: time.Minute, 3: 2 * time.Minute, 4: 4 * time.Minute, 5: 5 * time.Minute, 9: 5 * time.Minute}
	for next, d := range want {
		if got := c.Backoff(next); got != d {
			t.Errorf("backoff(%d) = %s, want %s", next, got, d)
		}
	}
}

func TestEligibility(t *testing.T) {
	c := DefaultConfig()
	c.NodeSelector = labels.SelectorFromSet(labels.Set{"pool": "workers"})
	cases := map[string]struct {
		labels map[string]string
		ok     bool
		reason v1alpha1.Reason
	}{
		"selected":     {map[string]string{"pool": "workers"}, true, ""},
		"not selected": {map[string]string{"pool": "gpu"}, false, "NotSelected"},
		"excluded":     {map[string]string{"pool": "workers", "nodecycle.io/exclude": "true"}, false, "Excluded"},
	}
	for name, tc := range cases {
		ok, reason, _ := c.Eligibility(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: tc.labels}})
		if ok != tc.ok || reason != tc.reason {
			t.Errorf("%s: got %t %q, want %t %q", name, ok, reason, tc.ok, tc.reason)
		}
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.MaxConcurrent, c.RebootTimeout, c.HistoryLimit, c.Drain.GracePeriodSeconds = 0, 0, 0, 0
	err := c.Validate()
	for _, want := range []string{"max concurrent", "reboot timeout", "history limit", "0 would force-delete"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

// With ExcludeFromMedik8s, every NodeCycle puts medik8s' exclude label on
// its node with the cordon, next to a policy's labels.
func TestExcludeFromMedik8s(t *testing.T) {
	c := DefaultConfig()
	if got := c.CycleSpec("n1", nil).Hooks.Labels; got[LabelMedik8sExclude] != "" {
		t.Fatalf("off by default, got %v", got)
	}
	c.ExcludeFromMedik8s = true
	policy := &v1alpha1.NodeCyclePolicy{Spec: v1alpha1.NodeCyclePolicySpec{Hooks: &v1alpha1.HookSpec{Labels: map[string]string{"maint": "true"}}}}
	for _, p := range []*v1alpha1.NodeCyclePolicy{nil, policy} {
		if got := c.CycleSpec("n1", p).Hooks.Labels; got[LabelMedik8sExclude] != "true" || (p != nil && got["maint"] != "true") {
			t.Fatalf("policy %v: labels %v", p != nil, got)
		}
	}
}

// Every NodeCycle waits for its node to serve again; a policy's waitForPods
// picks its own pods and keeps the manager's startup taints and timeout
// unless it names its own.
func TestWaitForPodsDefaultsAndPolicy(t *testing.T) {
	c := DefaultConfig()
	w := c.CycleSpec("n1", nil).WaitForPods
	if w == nil || !w.DaemonSetPods || w.PodSelector != nil || !slices.Equal(w.StartupTaints, DefaultStartupTaints) || w.Timeout.Duration != 10*time.Minute {
		t.Fatalf("default waitForPods %+v", w)
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "ceph-osd"}}
	policy := &v1alpha1.NodeCyclePolicy{Spec: v1alpha1.NodeCyclePolicySpec{WaitForPods: &v1alpha1.PodsReadySpec{PodSelector: sel}}}
	w = c.CycleSpec("n1", policy).WaitForPods
	if w.DaemonSetPods || w.PodSelector == nil || !slices.Equal(w.StartupTaints, DefaultStartupTaints) || w.Timeout.Duration != 10*time.Minute {
		t.Fatalf("policy's waitForPods %+v", w)
	}
	policy.Spec.WaitForPods = &v1alpha1.PodsReadySpec{StartupTaints: []string{"example.com/cni"}, Timeout: ptr.To(v1alpha1.NewDuration(time.Minute))}
	w = c.CycleSpec("n1", policy).WaitForPods
	if !slices.Equal(w.StartupTaints, []string{"example.com/cni"}) || w.Timeout.Duration != time.Minute {
		t.Fatalf("policy's waitForPods %+v", w)
	}
	// The NodeCycle's list is its own: the manager's stays.
	w.StartupTaints[0] = "changed"
	if c.StartupTaints[0] != DefaultStartupTaints[0] || DefaultStartupTaints[0] != "node.kubernetes.io/not-ready" {
		t.Fatalf("manager's list changed: %q", c.StartupTaints)
	}
}

// A policy's drainFailure overrides the manager's --drain-failure; left
// out, the manager's stays.
func TestDrainFailureFromThePolicy(t *testing.T) {
	c := DefaultConfig()
	c.Drain.Failure = v1alpha1.DrainFailureLeaveCordoned
	policy := &v1alpha1.NodeCyclePolicy{}
	if got := c.CycleSpec("n1", policy).Drain.Failure; got != v1alpha1.DrainFailureLeaveCordoned {
		t.Fatalf("policy without drainFailure: %q, want the manager's LeaveCordoned", got)
	}
	policy.Spec.DrainFailure = v1alpha1.DrainFailureSkipNode
	if got := c.CycleSpec("n1", policy).Drain.Failure; got != v1alpha1.DrainFailureSkipNode {
		t.Fatalf("policy with drainFailure SkipNode: %q", got)
	}
}
