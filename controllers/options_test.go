package controllers

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

func noEnv(string) (string, bool) { return "", false }

func TestParseOptionsRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"malformed drain timeout", []string{"--drain-timeout=ten minutes"}, nil, "drain-timeout"},
		{"negative reboot timeout", []string{"--reboot-timeout=-5m"}, nil, "reboot timeout must be positive"},
		{"malformed selector", []string{"--node-selector=role in (a"}, nil, "invalid --node-selector"},
		{"zero concurrency", []string{"--max-concurrent=0"}, nil, "max concurrent must be at least 1"},
		{"malformed concurrency", []string{"--max-concurrent=three"}, nil, "invalid --max-concurrent \"three\""},
		{"zero percent", []string{"--max-concurrent=0%"}, nil, "a percentage must be 1% to 100%"},
		{"over 100 percent", []string{"--max-concurrent=150%"}, nil, "a percentage must be 1% to 100%"},
		{"grace period below -1", []string{"--pod-grace-period=-2"}, nil, "pod grace period"},
		{"unknown flag", []string{"--drain-timout=1m"}, nil, "drain-timout"},
		{"stray argument", []string{"reboot"}, nil, "unexpected arguments"},
		{"backoff above max", []string{"--retry-backoff=2h", "--max-retry-backoff=1h"}, nil, "retry backoff"},
		{"malformed env", nil, map[string]string{"NODECYCLE_DRAIN_TIMEOUT": "soon"}, "NODECYCLE_DRAIN_TIMEOUT"},
		{"freeze without a reason", []string{"--freeze=2026-12-19T18:00:00Z,2026-12-20T18:00:00Z"}, nil, "START,END,REASON"},
		{"freeze of a year", nil, map[string]string{"NODECYCLE_FREEZE": "2026-12-19T18:00:00Z,2027-12-20T18:00:00Z,typo"}, "more than 31 days"},
		{"startup taint not a key", []string{"--startup-taints=node.kubernetes.io/not-ready,bad key"}, nil, `invalid value "node.kubernetes.io/not-ready,bad key" for flag -startup-taints: "bad key": not a taint key`},
		{"startup taint prefix not a domain", []string{"--startup-taints=Readiness_/"}, nil, "a key prefix must be a DNS subdomain"},
		{"zero pods timeout", []string{"--wait-for-pods-timeout=0s"}, nil, "wait for pods timeout must be positive"},
		{"prometheus URL without a scheme", []string{"--prometheus-urls=http://ok:9090,prometheus:9090"}, nil, `"prometheus:9090" is not an http(s) URL`},
		{"unknown drain failure", []string{"--drain-failure=retry"}, nil, `"retry" is not uncordon, leave-cordoned or skip-node`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			_, err := ParseOptions(tc.args, lookup, io.Discard)
			if err == nil {
				t.Fatalf("ParseOptions(%v) succeeded, want an error mentioning %q", tc.args, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestParseOptionsDefaultsAndFlags(t *testing.T) {
	o, err := ParseOptions(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.Controllers
	if c.MaxConcurrent != 1 || c.RebootTimeout != 15*time.Minute || c.Drain.Timeout.Duration != 10*time.Minute || c.Namespace != "nodecycle-system" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if !c.NodeSelector.Empty() || o.LeaderElectNS != "nodecycle-system" {
		t.Fatalf("unexpected defaults: selector %q, lease namespace %q", c.NodeSelector, o.LeaderElectNS)
	}
	// A node returns to service only when it can serve: on by default.
	if !c.WaitForDaemonSetPods || c.PodsReadyTimeout != 10*time.Minute || strings.Join(c.StartupTaints, ",") !=
		"node.kubernetes.io/not-ready,node.kubernetes.io/unreachable,node.kubernetes.io/network-unavailable,node.cloudprovider.kubernetes.io/uninitialized,readiness.k8s.io/" {
		t.Fatalf("unexpected defaults: wait for DaemonSet pods %t, startup taints %q, timeout %s", c.WaitForDaemonSetPods, c.StartupTaints, c.PodsReadyTimeout)
	}
	if c.Drain.Failure != "" {
		t.Fatalf("drain failure %q by default, want empty (Uncordon)", c.Drain.Failure)
	}
	skip, err := ParseOptions(nil, func(k string) (string, bool) { return "skip-node", k == "NODECYCLE_DRAIN_FAILURE" }, io.Discard)
	if err != nil || skip.Controllers.Drain.Failure != v1alpha1.DrainFailureSkipNode {
		t.Fatalf("NODECYCLE_DRAIN_FAILURE=skip-node: %v, %+v", err, skip)
	}
	o, err = ParseOptions([]string{"--startup-taints=", "--wait-for-daemonset-pods=false"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Controllers.StartupTaints != nil || o.Controllers.WaitForDaemonSetPods || o.Controllers.CycleSpec("n1", nil).WaitForPods != nil {
		t.Fatalf("the wait is not off: %q %t", o.Controllers.StartupTaints, o.Controllers.WaitForDaemonSetPods)
	}
	o, err = ParseOptions([]string{"--startup-taints= example.com/cni-not-ready , storage.example.com/"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.Controllers.StartupTaints, ","); got != "example.com/cni-not-ready,storage.example.com/" {
		t.Fatalf("startup taints %q", got)
	}
	o, err = ParseOptions([]string{"--node-selector=pool=workers", "--drain-timeout=90s", "--namespace=ops"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Controllers.NodeSelector.String() != "pool=workers" || o.Controllers.Drain.Timeout.Duration != 90*time.Second || o.LeaderElectNS != "ops" {
		t.Fatalf("flags not applied: %+v", o.Controllers)
	}
	// Freezes: the flag repeated, or several in one value (the clusterctl
	// variable's); empty is none.
	o, err = ParseOptions([]string{"--freeze=2026-12-19T18:00:00+01:00,2027-01-04T08:00:00+01:00,holidays; 2027-03-01T00:00:00Z,2027-03-02T00:00:00Z,audit",
		"--freeze=2027-04-01T00:00:00Z,2027-04-02T00:00:00Z,move", "--freeze=", "--freeze=none"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f := o.Controllers.Freezes; len(f) != 3 || f[0].Reason != "holidays" || f[1].Start != "2027-03-01T00:00:00Z" || f[2].Reason != "move" {
		t.Fatalf("freezes %+v", f)
	}
}

func TestMaxConcurrentPercentage(t *testing.T) {
	o, err := ParseOptions([]string{"--max-concurrent=25%"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := o.Controllers; c.MaxConcurrentPercent != 25 || c.MaxConcurrent != 1 {
		t.Fatalf("25%%: percent %d, at least %d", c.MaxConcurrentPercent, c.MaxConcurrent)
	}
}

// The first lists of a large management cluster take minutes: the manager
// waits for them instead of exiting after controller-runtime's 2 minutes.
func TestManagerWaitsLongForItsFirstLists(t *testing.T) {
	if got := controllerConfig(&Options{}).CacheSyncTimeout; got < 10*time.Minute {
		t.Fatalf("controllers wait %v for their caches, want at least 10m", got)
	}
}

// N10: the install gives the manager its container's memory limit; the Go
// runtime's soft limit is 90% of it (at 100% the fleet's manager peaked at
// 1,007 of 1,024 MiB), unless GOMEMLIMIT says otherwise.
func TestSoftMemoryLimitIsNinetyPercentOfTheContainers(t *testing.T) {
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	o, err := ParseOptions(nil, env(map[string]string{"NODECYCLE_MEMORY_LIMIT": "2147483648"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := SoftMemoryLimit(o.MemoryLimit, env(nil)); got != 1932735276 {
		t.Fatalf("soft limit %d for a 2 GiB container, want 1932735276 (90%%)", got)
	}
	if got := SoftMemoryLimit(o.MemoryLimit, env(map[string]string{"GOMEMLIMIT": "1GiB"})); got != 0 {
		t.Fatalf("soft limit %d with GOMEMLIMIT set, want 0 (the runtime's own)", got)
	}
	if got := SoftMemoryLimit(0, env(nil)); got != 0 {
		t.Fatalf("soft limit %d without a container limit, want 0", got)
	}
}
