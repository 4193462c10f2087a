package controllers

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/flagenv"
	"github.com/nodecycle/nodecycle/internal/gates"
	"github.com/nodecycle/nodecycle/internal/inplace"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
	"github.com/nodecycle/nodecycle/internal/notify"
	"github.com/nodecycle/nodecycle/internal/settings"
)

// SoftMemoryLimit is the Go runtime's soft memory limit for a container
// memory limit of limit bytes: 90% of it, for the memory the runtime does
// not count (stacks of cgo, the kernel's page cache of the binary) and the
// bursts between two collections; 0 (leave the runtime's) when limit is 0
// or GOMEMLIMIT is set.
func SoftMemoryLimit(limit int64, lookupEnv func(string) (string, bool)) int64 {
	if _, set := lookupEnv("GOMEMLIMIT"); set || limit <= 0 {
		return 0
	}
	return limit / 10 * 9
}

// Options are the manager's settings.
type Options struct {
	Kubeconfig  string
	MetricsAddr string
	// MetricsSecure serves /metrics over HTTPS to callers whose token may
	// get the non-resource URL /metrics.
	MetricsSecure bool
	ProbeAddr     string
	// ProfilerAddr serves Go's pprof endpoints when not empty.
	ProfilerAddr  string
	LeaderElect   bool
	LeaderElectNS string
	QPS           float64
	Burst         int
	Verbosity     int
	// MemoryLimit is the container's memory limit in bytes (0: none); the
	// Go runtime's soft limit is set to 90% of it (SoftMemoryLimit).
	MemoryLimit int64
	// ClusterAPI runs the manager in a Cluster API management cluster: it
	// handles the nodes of every workload cluster, not its own.
	ClusterAPI  bool
	Controllers settings.Config
	// Registry receives the manager's own metrics; nil means the registry
	// controller-runtime serves on --metrics-bind-address.
	Registry prometheus.Registerer
	// SkipNameValidation lets one process run several managers (tests, sandbox).
	SkipNameValidation bool
	// Notifications: the Secret of receivers (shoutrrr URLs) in the
	// manager's namespace ("": none), the reasons sent, the template.
	NotificationSecret   string
	NotificationReasons  []v1alpha1.Reason
	NotificationTemplate string
	// InstallAgent (Cluster API mode) applies the agent to every Cluster
	// labelled nodecycle.io/agent=enabled; AgentImage replaces its image.
	InstallAgent bool
	AgentImage   string
	// InPlace (Cluster API mode) serves Cluster API's in-place update hooks.
	InPlace InPlaceOptions
}

// InPlaceOptions are the settings of the in-place update extension.
type InPlaceOptions struct {
	// Port of the hooks' TLS server; 0 serves none.
	Port int
	// CertDir holds the server's tls.crt and tls.key.
	CertDir string
	// ClientCA is the file of CertDir with the CAs of the client
	// certificates accepted (Cluster API's); "" with AnyClient.
	ClientCA string
	// AnyClient serves callers without a client certificate.
	AnyClient bool
	// Paths are the directories whose files change in place.
	Paths []string
	// Poll is how soon Cluster API calls UpdateMachine again while the
	// update's NodeCycle runs.
	Poll  time.Duration
	paths string
}

// ParseOptions reads the manager's flags, then the NODECYCLE_* environment
// for flags not given. Every value is checked; errors name the flag.
func ParseOptions(args []string, lookupEnv func(string) (string, bool), usage io.Writer) (*Options, error) {
	o := &Options{Controllers: settings.DefaultConfig()}
	fs, raw := o.flagSet(usage)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := flagenv.Apply(fs, lookupEnv, nil); err != nil {
		return nil, err
	}
	if err := o.complete(raw); err != nil {
		return nil, err
	}
	return o, nil
}

// FlagSet returns the manager's flags with their defaults
// (docs/reference.md is generated from it).
func FlagSet() *flag.FlagSet {
	fs, _ := (&Options{Controllers: settings.DefaultConfig()}).flagSet(io.Discard)
	return fs
}

// rawFlags are the flags parsed into Options by complete.
type rawFlags struct {
	nodeSelector, maxConcurrent, drainPodSelector, notifyOn, agentSelector *string
}

// flagSet registers the manager's flags on o's fields.
func (o *Options) flagSet(usage io.Writer) (*flag.FlagSet, rawFlags) {
	def := settings.DefaultConfig()
	c := &o.Controllers
	fs := flag.NewFlagSet("nodecycle-manager", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Path to a kubeconfig; empty means in-cluster configuration.")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus /metrics endpoint; 0 disables it.")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true, "Serve /metrics over HTTPS (a self-signed certificate) and only to callers whose token may get the non-resource URL /metrics (ClusterRole nodecycle-metrics-reader); false serves plain HTTP to anyone.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz; 0 disables it.")
	fs.StringVar(&o.ProfilerAddr, "profiler-address", "", "Address of Go's pprof endpoints (/debug/pprof/), for example 127.0.0.1:6060; empty disables them.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "Elect a leader so that only one manager acts at a time.")
	fs.StringVar(&o.LeaderElectNS, "leader-election-namespace", "", "Namespace of the leader election Lease; defaults to --namespace.")
	fs.IntVar(&o.Verbosity, "v", 0, "Log verbosity.")
	fs.Int64Var(&o.MemoryLimit, "memory-limit", 0, "The container's memory limit in bytes (the install sets it from limits.memory); the Go runtime collects garbage harder from 90% of it on, leaving room for what it does not count. 0: no limit; GOMEMLIMIT, when set, wins.")
	fs.Float64Var(&o.QPS, "kube-api-qps", 50, "Requests per second the manager may send to the API server (client-side limit).")
	fs.IntVar(&o.Burst, "kube-api-burst", 100, "Burst of requests above --kube-api-qps.")
	fs.StringVar(&c.Namespace, "namespace", def.Namespace, "Namespace of the NodeCycles of this cluster.")
	nodeSelector := fs.String("node-selector", "", "Label selector of the nodes to handle (kubectl syntax); empty selects all nodes. Nodes labelled nodecycle.io/exclude=true are always left alone.")
	maxConcurrent := fs.String("max-concurrent", strconv.Itoa(def.MaxConcurrent), "Nodes of the cluster in maintenance at the same time: a number, or a percentage (25%) of the cluster's Nodes nodecycle may handle, rounded up, at least 1.")
	fs.StringVar(&c.TopologyKey, "topology-key", "", "Node label (topology.kubernetes.io/zone, say): at most one node per value of it in maintenance at once, within --max-concurrent. Nodes without it count as one value.")
	fs.DurationVar(&c.Drain.Timeout.Duration, "drain-timeout", def.Drain.Timeout.Duration, "Time limit of a drain; then the operation fails and the node is uncordoned.")
	fs.Int64Var(&c.Drain.GracePeriodSeconds, "pod-grace-period", def.Drain.GracePeriodSeconds, "Grace period in seconds given to evicted pods; -1 keeps each pod's own.")
	fs.BoolVar(&c.Drain.DeleteEmptyDirData, "delete-emptydir-data", def.Drain.DeleteEmptyDirData, "Evict pods that use emptyDir volumes (their data is lost).")
	fs.BoolVar(&c.Drain.EvictUnmanagedPods, "evict-unmanaged-pods", def.Drain.EvictUnmanagedPods, "Evict pods that no controller recreates.")
	drainPodSelector := fs.String("drain-pod-selector", "", "Escape hatch: evict only the pods this label selector (kubectl syntax) selects; the others go down with the reboot. Empty: every pod.")
	fs.Int64Var(&c.Drain.SkipWaitForDeleteTimeoutSeconds, "skip-wait-for-delete-timeout", 0, "Escape hatch: do not wait for a pod whose deletion began more than this many seconds ago; 0 waits for every pod.")
	fs.BoolVar(&c.Drain.DeleteAfterTimeout, "delete-after-drain-timeout", false, "Escape hatch: at the drain timeout, delete the pods left (no PodDisruptionBudget is asked) and go on, instead of failing.")
	fs.Func("drain-eviction-requests", "How the drain asks pods to leave: auto (through EvictionRequests where the cluster serves lifecycle.k8s.io/v1alpha1, else the Eviction API), always (EvictionRequests only) or never (the Eviction API); a policy's drainEvictionRequests overrides it.", func(v string) error {
		m, ok := map[string]v1alpha1.EvictionRequestsMode{"auto": v1alpha1.EvictionRequestsAuto, "always": v1alpha1.EvictionRequestsAlways, "never": v1alpha1.EvictionRequestsNever}[strings.ToLower(v)]
		if !ok {
			return fmt.Errorf("%q is not auto, always or never", v)
		}
		c.Drain.EvictionRequests = m
		return nil
	})
	fs.Func("drain-failure", "What follows a drain that cannot finish (timeout, or pods it may not evict): uncordon (the node, tried again after --retry-backoff), leave-cordoned (the node stays cordoned, tried again after the backoff) or skip-node (uncordoned and not tried again on its current boot); a policy's drainFailure overrides it.", func(v string) error {
		a, ok := map[string]v1alpha1.DrainFailureAction{"uncordon": v1alpha1.DrainFailureUncordon, "leave-cordoned": v1alpha1.DrainFailureLeaveCordoned, "skip-node": v1alpha1.DrainFailureSkipNode}[strings.ToLower(v)]
		if !ok {
			return fmt.Errorf("%q is not uncordon, leave-cordoned or skip-node", v)
		}
		c.Drain.Failure = a
		return nil
	})
	fs.BoolVar(&c.ControlPlanesLast, "control-planes-last", def.ControlPlanesLast, "A control-plane node's maintenance starts only once no worker of its cluster is in or waiting for maintenance.")
	fs.DurationVar(&c.RebootTimeout, "reboot-timeout", def.RebootTimeout, "Time limit from the reboot request to a new boot ID and Ready=True.")
	fs.DurationVar(&c.SettleTime, "settle-time", 0, "A node's maintenance starts at least this long after the last one in its cluster ended (a policy's settleTime overrides it).")
	fs.BoolVar(&c.WaitForHealthyPDBs, "wait-for-healthy-pdbs", false, "A node's maintenance starts only while every PodDisruptionBudget of its cluster is healthy (a policy's waitForHealthyPodDisruptionBudgets overrides it).")
	fs.Func("alertmanager-urls", "Comma-separated base URLs of the Alertmanagers that NodeCyclePolicies of namespaces other than the manager's may name in blockingAlerts (the manager's own namespace may name any); empty: none.", urlList(&c.AlertmanagerURLs))
	fs.Func("prometheus-urls", "Comma-separated base URLs of the Prometheus query APIs that NodeCyclePolicies of namespaces other than the manager's may name in blockingQueries (the manager's own namespace may name any); empty: none.", urlList(&c.PrometheusURLs))
	fs.Func("freeze", "Change freezes of every cluster: START,END,REASON, the times RFC 3339 with their offsets (2026-12-19T18:00:00+01:00), at most 31 days apart; no new maintenance starts in one. Several: repeat the flag, or separate them with ';'. Empty or none: none.", func(v string) error {
		for part := range strings.SplitSeq(v, ";") {
			if p := strings.TrimSpace(part); p == "" || p == "none" {
				continue
			}
			f, err := gates.ParseFreezeFlag(part)
			if err != nil {
				return err
			}
			c.Freezes = append(c.Freezes, f)
		}
		return nil
	})
	fs.BoolVar(&c.TaintWaitingNodes, "taint-waiting-nodes", false, "A node waiting for its maintenance carries the taint "+v1alpha1.TaintMaintenancePending+":PreferNoSchedule, so that pods evicted elsewhere avoid it; the cordon takes it off (a policy's taintWhileWaiting overrides it).")
	fs.BoolVar(&c.ExcludeFromMedik8s, "medik8s-exclude-from-remediation", false, "Put medik8s' label "+settings.LabelMedik8sExclude+"=true on a node with the cordon (removed with the uncordon), so that medik8s does not remediate a node that is only rebooting.")
	fs.BoolVar(&c.WaitForDaemonSetPods, "wait-for-daemonset-pods", def.WaitForDaemonSetPods, "Uncordon a rebooted node only once its DaemonSet pods are Ready again, those that were Ready when its maintenance began (a policy's waitForPods overrides it).")
	fs.Func("startup-taints", "Comma-separated taint keys (a key ending in / is a prefix) that must be gone from a rebooted node before its uncordon; empty: none. Default: "+strings.Join(def.StartupTaints, ","), func(v string) error {
		c.StartupTaints = nil
		for k := range strings.SplitSeq(v, ",") {
			if k = strings.TrimSpace(k); k == "" {
				continue
			}
			if err := settings.ValidTaintKey(k); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
			c.StartupTaints = append(c.StartupTaints, k)
		}
		return nil
	})
	fs.DurationVar(&c.PodsReadyTimeout, "wait-for-pods-timeout", def.PodsReadyTimeout, "Time limit of the wait for a rebooted node's pods and startup taints; then its NodeCycle fails PodsNotReady (or StartupTaintsNotRemoved) and the node is uncordoned.")
	fs.DurationVar(&c.HookTimeout, "hook-timeout", def.HookTimeout, "Time limit of each wait for pre-reboot.hook.nodecycle.io/* and post-reboot.hook.nodecycle.io/* annotations on a node in maintenance.")
	fs.BoolVar(&o.ClusterAPI, "cluster-api", false, "Run in a Cluster API management cluster: handle the nodes of every workload Cluster (opted in by nodecycle.io/strategy on their MachineDeployments) instead of this cluster's.")
	fs.BoolVar(&o.InstallAgent, "install-agent", true, "Cluster API mode: install the agent (config/workload, built in) in every workload Cluster labelled "+v1alpha1.LabelAgent+"=enabled, in any namespace, with server-side apply; re-applied every 10 minutes.")
	fs.IntVar(&o.InPlace.Port, "in-place-updates-port", 0, "Cluster API mode: serve Cluster API's in-place update hooks (CanUpdateMachineSet, CanUpdateMachine, UpdateMachine) over TLS on this port, for an ExtensionConfig to register (config/in-place-updates); 0 (default) serves none.")
	fs.StringVar(&o.InPlace.CertDir, "in-place-updates-cert-dir", "/etc/nodecycle/in-place-updates", "Directory of the in-place update server's tls.crt and tls.key.")
	fs.StringVar(&o.InPlace.ClientCA, "in-place-updates-client-ca", "ca.crt", "File of --in-place-updates-cert-dir with the CA bundle that a caller's client certificate must chain to: only Cluster API, called with --runtime-extension-client-cert-file, may call the hooks. Until it and the serving certificate are in the directory, the hooks wait (the rest of the manager runs).")
	fs.BoolVar(&o.InPlace.AnyClient, "in-place-updates-insecure-allow-any-client", false, "Serve the in-place update hooks to any caller that reaches the port, without a client certificate. Insecure: whoever reaches the port learns which Machines are opted in, and only the checks against the API server stand between them and an update.")
	fs.StringVar(&o.InPlace.paths, "in-place-update-paths", strings.Join(inplace.DefaultPaths, ","), "Comma-separated directories (ending in /): a change of the bootstrap configuration's files under them is done in place, with a reboot; any other change replaces the Machines.")
	fs.DurationVar(&o.InPlace.Poll, "in-place-update-poll", 10*time.Second, "How soon Cluster API calls UpdateMachine again while the update's NodeCycle runs.")
	fs.StringVar(&o.AgentImage, "agent-image", "", "Cluster API mode: the image of the agent it installs; empty keeps the built-in manifest's.")
	fs.DurationVar(&c.ReplaceTimeout, "replace-timeout", def.ReplaceTimeout, "Time limit of the replace strategy, from the Machine's deletion until its replacement's Node is Ready.")
	fs.DurationVar(&c.RetryBackoff, "retry-backoff", def.RetryBackoff, "Wait after a failed operation before the node is tried again; doubles with each failure.")
	fs.DurationVar(&c.MaxRetryBackoff, "max-retry-backoff", def.MaxRetryBackoff, "Longest wait between retries.")
	fs.IntVar(&c.HistoryLimit, "history-limit", def.HistoryLimit, "Finished NodeCycles kept per node.")
	fs.IntVar(&c.QuarantineAfter, "quarantine-after", def.QuarantineAfter, "Quarantine a node, instead of rebooting it again, once it needed a new reboot right after this many verified reboots in a row (at most --history-limit).")
	fs.DurationVar(&c.LoopWindow, "reboot-loop-window", def.LoopWindow, "A node that needs a reboot again within this time of a verified one counts toward --quarantine-after.")
	fs.DurationVar(&c.GoneMachineHistory, "gone-machine-history", def.GoneMachineHistory, "Cluster API mode: how long a finished NodeCycle is kept once its Machine no longer exists (replaced or scaled away).")
	fs.StringVar(&o.NotificationSecret, "notification-secret", "", "Secret in --namespace whose every key holds a receiver's shoutrrr URL (slack://, teams://, generic://, smtp://, ...); the Events of --notify-on are sent to each. Empty: no notifications.")
	notifyOn := fs.String("notify-on", joinReasons(notify.DefaultReasons), "Comma-separated Event reasons that are sent to the receivers of --notification-secret.")
	fs.StringVar(&o.NotificationTemplate, "notification-template", notify.DefaultTemplate, "Go text/template of a notification's text; fields .Reason .Type .Kind .Namespace .Name .Cluster .Message.")
	agentSelector := fs.String("agent-pod-selector", def.AgentSelector.String(), "Label selector of the agent's pods; an in-place reboot is requested only while a Ready agent pod runs on the node. Empty disables the check.")
	return fs, rawFlags{nodeSelector: nodeSelector, maxConcurrent: maxConcurrent, drainPodSelector: drainPodSelector, notifyOn: notifyOn, agentSelector: agentSelector}
}

// complete checks every value and fills in what the flags say indirectly;
// errors name the flag.
func (o *Options) complete(raw rawFlags) error {
	c := &o.Controllers
	nodeSelector, maxConcurrent, drainPodSelector, notifyOn, agentSelector := raw.nodeSelector, raw.maxConcurrent, raw.drainPodSelector, raw.notifyOn, raw.agentSelector
	sel, err := labels.Parse(*nodeSelector)
	if err != nil {
		return fmt.Errorf("invalid --node-selector %q: %w", *nodeSelector, err)
	}
	c.NodeSelector = sel
	if c.AgentSelector, err = labels.Parse(*agentSelector); err != nil {
		return fmt.Errorf("invalid --agent-pod-selector %q: %w", *agentSelector, err)
	}
	if *drainPodSelector != "" {
		if c.Drain.PodSelector, err = metav1.ParseToLabelSelector(*drainPodSelector); err != nil {
			return fmt.Errorf("invalid --drain-pod-selector %q: %w", *drainPodSelector, err)
		}
	}
	if pct, ok := strings.CutSuffix(*maxConcurrent, "%"); ok {
		if c.MaxConcurrentPercent, err = strconv.Atoi(pct); err != nil || c.MaxConcurrentPercent < 1 || c.MaxConcurrentPercent > 100 {
			return fmt.Errorf("invalid --max-concurrent %q: a percentage must be 1%% to 100%%", *maxConcurrent)
		}
		c.MaxConcurrent = 1
	} else if c.MaxConcurrent, err = strconv.Atoi(*maxConcurrent); err != nil {
		return fmt.Errorf("invalid --max-concurrent %q: want a number or a percentage such as 25%%", *maxConcurrent)
	}
	if o.NotificationReasons, err = notify.ParseReasons(*notifyOn); err != nil {
		return fmt.Errorf("invalid --notify-on: %w", err)
	}
	if _, err := notify.New(nil, "", "", nil, o.NotificationTemplate, nil, logr.Discard(), nil); err != nil {
		return fmt.Errorf("invalid --notification-template: %w", err)
	}
	if o.QPS <= 0 || o.Burst < 1 {
		return fmt.Errorf("invalid flags: --kube-api-qps must be positive and --kube-api-burst at least 1, got %g and %d", o.QPS, o.Burst)
	}
	if o.LeaderElectNS == "" {
		o.LeaderElectNS = c.Namespace
	}
	if err := o.InPlace.complete(o.ClusterAPI); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("invalid flags: %w", err)
	}
	return nil
}

func joinReasons(rs []v1alpha1.Reason) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = string(r)
	}
	return strings.Join(parts, ",")
}

func (p *InPlaceOptions) complete(clusterAPI bool) error {
	if p.Port == 0 {
		return nil
	}
	if !clusterAPI {
		return fmt.Errorf("--in-place-updates-port: in-place updates are Cluster API's; add --cluster-api")
	}
	if p.Port < 0 || p.Port > 65535 {
		return fmt.Errorf("invalid --in-place-updates-port %d", p.Port)
	}
	if p.Poll < time.Second {
		return fmt.Errorf("invalid --in-place-update-poll %s: at least 1s (Cluster API counts in seconds)", p.Poll)
	}
	if p.AnyClient {
		p.ClientCA = ""
	} else if p.ClientCA == "" || strings.Contains(p.ClientCA, "/") {
		return fmt.Errorf("invalid --in-place-updates-client-ca %q: a file name of --in-place-updates-cert-dir (or --in-place-updates-insecure-allow-any-client)", p.ClientCA)
	}
	var err error
	if p.Paths, err = nodeupdate.ParsePaths(p.paths); err != nil {
		return fmt.Errorf("invalid --in-place-update-paths: %w", err)
	}
	return nil
}

// urlList parses a flag's comma-separated http(s) URLs into list.
func urlList(list *[]string) func(string) error {
	return func(v string) error {
		*list = nil
		for u := range strings.SplitSeq(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
					return fmt.Errorf("%q is not an http(s) URL", u)
				}
				*list = append(*list, u)
			}
		}
		return nil
	}
}
