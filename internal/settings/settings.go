package settings

import (
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// Config is what the manager does to which nodes. main fills it from flags.
type Config struct {
	// Namespace holds the NodeCycles of the cluster the manager runs in.
	Namespace string
	// NodeSelector picks the nodes nodecycle handles; empty selects all.
	NodeSelector labels.Selector
	// MaxConcurrent is the number of nodes of one cluster in maintenance at
	// once; with MaxConcurrentPercent, the least it is.
	MaxConcurrent int
	// MaxConcurrentPercent, when not 0, makes the number that percentage of
	// the cluster's Nodes nodecycle may handle, rounded up, at least
	// MaxConcurrent.
	MaxConcurrentPercent int
	// TopologyKey, when set, allows at most one node per value of this
	// node label (a zone, say) in maintenance at once, within MaxConcurrent.
	TopologyKey string
	// AlertmanagerURLs are the Alertmanagers that policies of namespaces
	// other than Namespace may name in blockingAlerts; the manager asks no
	// other URL for them.
	AlertmanagerURLs []string
	// PrometheusURLs are the Prometheus query APIs that policies of
	// namespaces other than Namespace may name in blockingQueries.
	PrometheusURLs []string
	// ControlPlanesLast holds a control-plane node's maintenance until no
	// worker of its cluster is in or waiting for maintenance.
	ControlPlanesLast bool
	// Drain holds the drain settings copied into each new NodeCycle.
	Drain v1alpha1.DrainSpec
	// RebootTimeout bounds the wait for a new boot ID and Ready.
	RebootTimeout time.Duration
	// ReplaceTimeout bounds the replace strategy, from the Machine's
	// deletion until its replacement's Node is Ready.
	ReplaceTimeout time.Duration
	// HookTimeout bounds each wait for pre- and post-reboot hooks.
	HookTimeout time.Duration
	// SettleTime and WaitForHealthyPDBs are the default gates after a
	// maintenance (a policy's settleTime, waitForHealthyPodDisruptionBudgets).
	SettleTime         time.Duration
	WaitForHealthyPDBs bool
	// Freezes hold new maintenance of every cluster (--freeze), besides
	// those of the policies.
	Freezes []v1alpha1.Freeze
	// TaintWaitingNodes is the default of a policy's taintWhileWaiting.
	TaintWaitingNodes bool
	// ExcludeFromMedik8s puts medik8s' exclude-from-remediation label on a
	// node with the cordon (removed with the uncordon), so that medik8s
	// does not remediate a node that is only rebooting.
	ExcludeFromMedik8s bool
	// WaitForDaemonSetPods: a rebooted node is uncordoned only once its
	// DaemonSet pods are Ready again (a policy's waitForPods overrides it).
	WaitForDaemonSetPods bool
	// StartupTaints: taint keys (a key ending in "/" is a prefix) that must
	// be gone from a rebooted node before its uncordon.
	StartupTaints []string
	// PodsReadyTimeout bounds the wait for the pods and startup taints.
	PodsReadyTimeout time.Duration
	// RetryBackoff is the wait after a failed operation before the node is
	// tried again; it doubles with every failure of the same boot, up to
	// MaxRetryBackoff.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// HistoryLimit is how many finished NodeCycles are kept per node.
	HistoryLimit int
	// QuarantineAfter is how many verified reboots in a row, each followed
	// at once (within LoopWindow) by a new need for one, quarantine a node
	// instead of rebooting it again.
	QuarantineAfter int
	LoopWindow      time.Duration
	// GoneMachineHistory is how long a finished NodeCycle is kept once its
	// Cluster API Machine no longer exists.
	GoneMachineHistory time.Duration
	// AgentSelector picks the agent's pods. Before an in-place reboot is
	// requested, a Ready agent pod must run on the node: a dead agent is
	// told from its pod's readiness. Empty: no check (agents not run as
	// pods).
	AgentSelector labels.Selector
}

// LabelMedik8sExclude keeps medik8s' remediation (Self Node Remediation,
// Node Healthcheck Operator) off a node.
const LabelMedik8sExclude = "remediation.medik8s.io/exclude-from-remediation"

// DefaultConfig is the configuration the manager runs with when no flag
// says otherwise.
func DefaultConfig() Config {
	return Config{
		Namespace:     "nodecycle-system",
		NodeSelector:  labels.Everything(),
		MaxConcurrent: 1,
		Drain: v1alpha1.DrainSpec{
			Timeout:            v1alpha1.NewDuration(10 * time.Minute),
			GracePeriodSeconds: -1,
			DeleteEmptyDirData: true,
			EvictUnmanagedPods: true,
		},
		RebootTimeout:  15 * time.Minute,
		ReplaceTimeout: 30 * time.Minute,
		HookTimeout:    30 * time.Minute,
		// A node is uncordoned only once it can serve again.
		WaitForDaemonSetPods: true,
		StartupTaints:        slices.Clone(DefaultStartupTaints),
		PodsReadyTimeout:     10 * time.Minute,
		ControlPlanesLast:    true,
		RetryBackoff:         5 * time.Minute,
		MaxRetryBackoff:      time.Hour,
		HistoryLimit:         5,
		QuarantineAfter:      2,
		LoopWindow:           time.Hour,
		GoneMachineHistory:   7 * 24 * time.Hour,
		AgentSelector:        labels.SelectorFromSet(labels.Set{"app.kubernetes.io/name": "nodecycle", "app.kubernetes.io/component": "agent"}),
	}
}

// Validate checks the configuration; every problem is named.
func (c Config) Validate() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("namespace must not be empty"))
	}
	if c.NodeSelector == nil {
		errs = append(errs, errors.New("node selector must be set (use labels.Everything)"))
	}
	if c.MaxConcurrentPercent < 0 || c.MaxConcurrentPercent > 100 {
		errs = append(errs, fmt.Errorf("max concurrent percentage must be between 1 and 100, got %d", c.MaxConcurrentPercent))
	}
	if c.MaxConcurrent < 1 {
		errs = append(errs, fmt.Errorf("max concurrent must be at least 1, got %d", c.MaxConcurrent))
	}
	if c.Drain.Timeout.Duration <= 0 {
		errs = append(errs, fmt.Errorf("drain timeout must be positive, got %s", c.Drain.Timeout.Duration))
	}
	if c.Drain.SkipWaitForDeleteTimeoutSeconds < 0 {
		errs = append(errs, fmt.Errorf("skip wait for delete timeout must be 0 (off) or positive, got %d", c.Drain.SkipWaitForDeleteTimeoutSeconds))
	}
	if c.Drain.GracePeriodSeconds < -1 || c.Drain.GracePeriodSeconds == 0 {
		// 0 deletes at once, without waiting for the pod's containers to stop.
		errs = append(errs, fmt.Errorf("pod grace period must be -1 (the pod's own) or at least 1, got %d (0 would force-delete)", c.Drain.GracePeriodSeconds))
	}
	if c.RebootTimeout <= 0 {
		errs = append(errs, fmt.Errorf("reboot timeout must be positive, got %s", c.RebootTimeout))
	}
	if c.ReplaceTimeout <= 0 {
		errs = append(errs, fmt.Errorf("replace timeout must be positive, got %s", c.ReplaceTimeout))
	}
	if c.SettleTime < 0 {
		errs = append(errs, fmt.Errorf("settle time must not be negative, got %s", c.SettleTime))
	}
	if c.HookTimeout <= 0 {
		errs = append(errs, fmt.Errorf("hook timeout must be positive, got %s", c.HookTimeout))
	}
	if c.PodsReadyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("wait for pods timeout must be positive, got %s", c.PodsReadyTimeout))
	}
	for _, k := range c.StartupTaints {
		if err := ValidTaintKey(k); err != nil {
			errs = append(errs, fmt.Errorf("startup taint %q: %w", k, err))
		}
	}
	if c.RetryBackoff <= 0 || c.MaxRetryBackoff < c.RetryBackoff {
		errs = append(errs, fmt.Errorf("retry backoff must be positive and at most the max retry backoff, got %s and %s", c.RetryBackoff, c.MaxRetryBackoff))
	}
	if c.GoneMachineHistory <= 0 {
		errs = append(errs, fmt.Errorf("history of gone Machines must be positive, got %s", c.GoneMachineHistory))
	}
	if c.HistoryLimit < 1 {
		errs = append(errs, fmt.Errorf("history limit must be at least 1, got %d", c.HistoryLimit))
	}
	if c.QuarantineAfter < 1 || c.QuarantineAfter > c.HistoryLimit {
		// The reboots in a row are counted in the kept history.
		errs = append(errs, fmt.Errorf("quarantine after must be between 1 and the history limit (%d), got %d", c.HistoryLimit, c.QuarantineAfter))
	}
	if c.LoopWindow <= 0 {
		errs = append(errs, fmt.Errorf("reboot loop window must be positive, got %s", c.LoopWindow))
	}
	return errors.Join(errs...)
}

// Eligibility says whether nodecycle may work on the node at all, and if not, why.
func (c Config) Eligibility(node *corev1.Node) (ok bool, reason v1alpha1.Reason, message string) {
	if node.Labels[v1alpha1.LabelExclude] == "true" {
		return false, v1alpha1.ReasonExcluded, fmt.Sprintf("Node has the label %s=true", v1alpha1.LabelExclude)
	}
	if !c.NodeSelector.Matches(labels.Set(node.Labels)) {
		return false, v1alpha1.ReasonNotSelected, fmt.Sprintf("Node does not match the node selector %q", c.NodeSelector.String())
	}
	return true, "", ""
}

// Backoff is the wait before attempt number next (2, 3, ...) of one boot.
func (c Config) Backoff(next int32) time.Duration {
	d := c.RetryBackoff
	for i := int32(2); i < next && d < c.MaxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxRetryBackoff)
}

// CycleSpec is the spec of a new NodeCycle: the manager's settings, with
// what the node's policy sets on top.
func (c Config) CycleSpec(node string, policy *v1alpha1.NodeCyclePolicy) v1alpha1.NodeCycleSpec {
	spec := c.cycleSpec(node, policy)
	if c.ExcludeFromMedik8s {
		if spec.Hooks.Labels == nil {
			spec.Hooks.Labels = map[string]string{}
		}
		spec.Hooks.Labels[LabelMedik8sExclude] = "true"
	}
	return spec
}

func (c Config) cycleSpec(node string, policy *v1alpha1.NodeCyclePolicy) v1alpha1.NodeCycleSpec {
	spec := v1alpha1.NodeCycleSpec{
		NodeName:       node,
		Strategies:     []v1alpha1.Strategy{v1alpha1.StrategyReboot},
		Drain:          c.Drain,
		RebootTimeout:  v1alpha1.NewDuration(c.RebootTimeout),
		ReplaceTimeout: ptr.To(v1alpha1.NewDuration(c.ReplaceTimeout)),
		Hooks:          &v1alpha1.HookSpec{Timeout: ptr.To(v1alpha1.NewDuration(c.HookTimeout))},
	}
	if c.SettleTime > 0 {
		spec.SettleTime = ptr.To(v1alpha1.NewDuration(c.SettleTime))
	}
	if c.WaitForHealthyPDBs {
		spec.WaitForHealthyPodDisruptionBudgets = ptr.To(true)
	}
	if c.TaintWaitingNodes {
		spec.TaintWhileWaiting = ptr.To(true)
	}
	if c.WaitForDaemonSetPods || len(c.StartupTaints) > 0 {
		spec.WaitForPods = &v1alpha1.PodsReadySpec{DaemonSetPods: c.WaitForDaemonSetPods, StartupTaints: slices.Clone(c.StartupTaints),
			Timeout: ptr.To(v1alpha1.NewDuration(c.PodsReadyTimeout))}
	}
	if policy == nil {
		return spec
	}
	p := policy.Spec
	spec.Policy = policy.Name
	if len(p.Strategies) > 0 {
		spec.Strategies = append([]v1alpha1.Strategy(nil), p.Strategies...)
	}
	if p.DrainTimeout != nil {
		spec.Drain.Timeout = *p.DrainTimeout
	}
	if p.RebootTimeout != nil {
		spec.RebootTimeout = *p.RebootTimeout
	}
	if p.DrainPodSelector != nil {
		spec.Drain.PodSelector = p.DrainPodSelector.DeepCopy()
	}
	if p.DrainSkipWaitForDeleteTimeoutSeconds != nil {
		spec.Drain.SkipWaitForDeleteTimeoutSeconds = *p.DrainSkipWaitForDeleteTimeoutSeconds
	}
	if p.DrainDeleteAfterTimeout != nil {
		spec.Drain.DeleteAfterTimeout = *p.DrainDeleteAfterTimeout
	}
	if p.DrainEvictionRequests != "" {
		spec.Drain.EvictionRequests = p.DrainEvictionRequests
	}
	if p.DrainFailure != "" {
		spec.Drain.Failure = p.DrainFailure
	}
	if p.PowerCycle != nil {
		spec.PowerCycle = p.PowerCycle.DeepCopy()
		// The NodeCycle carries its own node's machine, not the whole table.
		spec.PowerCycle.Machines = nil
		if m, ok := p.PowerCycle.Machines[node]; ok {
			spec.PowerCycle.Machines = map[string]string{node: m}
		}
	}
	if p.WaitForPods != nil {
		spec.WaitForPods = p.WaitForPods.DeepCopy()
		if spec.WaitForPods.StartupTaints == nil {
			spec.WaitForPods.StartupTaints = slices.Clone(c.StartupTaints)
		}
		if spec.WaitForPods.Timeout == nil {
			spec.WaitForPods.Timeout = ptr.To(v1alpha1.NewDuration(c.PodsReadyTimeout))
		}
	}
	if p.Hooks != nil {
		if p.Hooks.Timeout != nil {
			spec.Hooks.Timeout = ptr.To(*p.Hooks.Timeout)
		}
		for k, v := range p.Hooks.Labels {
			if spec.Hooks.Labels == nil {
				spec.Hooks.Labels = map[string]string{}
			}
			spec.Hooks.Labels[k] = v
		}
	}
	settle, healthy, taint := spec.SettleTime, spec.WaitForHealthyPodDisruptionBudgets, spec.TaintWhileWaiting
	p.Gates.DeepCopyInto(&spec.Gates)
	if spec.SettleTime == nil {
		spec.SettleTime = settle
	}
	if spec.WaitForHealthyPodDisruptionBudgets == nil {
		spec.WaitForHealthyPodDisruptionBudgets = healthy
	}
	if spec.TaintWhileWaiting == nil {
		spec.TaintWhileWaiting = taint
	}
	return spec
}
