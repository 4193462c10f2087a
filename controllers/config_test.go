package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestBackoffDoublesUpToTheLimit(t *testing.T) {
	c := DefaultConfig()
	c.RetryBackoff, c.MaxRetryBackoff = time.Minute, 5*time.Minute
	want := map[int32]time.Duration{2: time.Minute, 3: 2 * time.Minute, 4: 4 * time.Minute, 5: 5 * time.Minute, 9: 5 * time.Minute}
	for next, d := range want {
		if got := c.backoff(next); got != d {
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
		reason string
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

func TestNodeCycleNameIsDeterministicAndValid(t *testing.T) {
	a, b := nodeCycleName("", "worker-1", "boot-a", 1), nodeCycleName("", "worker-1", "boot-a", 1)
	if a != b {
		t.Fatalf("names differ for the same input: %s %s", a, b)
	}
	if nodeCycleName("", "worker-1", "boot-b", 1) == a || nodeCycleName("", "worker-1", "boot-a", 2) == a {
		t.Fatal("names must differ by boot and attempt")
	}
	if c := nodeCycleName("prod", "worker-1", "boot-a", 1); c == a || !strings.HasPrefix(c, "prod-worker-1-") {
		t.Fatalf("a Cluster API node's name must start with its cluster's: %s", c)
	}
	long := nodeCycleName("prod", strings.Repeat("n", 300), "boot", 12)
	if len(long) > 253 || !strings.HasSuffix(long, "-12") {
		t.Fatalf("long name %d chars: %s", len(long), long[len(long)-20:])
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.MaxConcurrent, c.RebootTimeout, c.HistoryLimit = 0, 0, 0
	err := c.Validate()
	for _, want := range []string{"max concurrent", "reboot timeout", "history limit"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}
