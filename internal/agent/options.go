package agent

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodecycle/nodecycle/internal/flagenv"
	"github.com/nodecycle/nodecycle/internal/nodeupdate"
	"github.com/nodecycle/nodecycle/internal/signing"
)

// Options are the agent's settings, from flags or NODECYCLE_* variables.
type Options struct {
	Kubeconfig             string
	NodeName               string
	SentinelFile           string
	SentinelCommand        string
	SentinelCommandTimeout time.Duration
	HostNamespaces         bool
	HostRoot               string
	UpdatePaths            []string
	Namespace              string
	RecheckPeriod          time.Duration
	HeartbeatPeriod        time.Duration
	RebootMethod           string
	RebootCommand          string
	RebootCommandTimeout   time.Duration
	MetricsAddr            string
	ProbeAddr              string
	Verbosity              int
}

// Defaults of the flags that the docs and the DaemonSet refer to.
const (
	DefaultSentinelFile  = "/var/run/reboot-required"
	DefaultRebootCommand = "nsenter --target 1 --mount -- systemctl reboot"
	MinHeartbeatPeriod   = time.Hour
)

// ParseOptions reads the agent's flags, then fills what the command line did
// not give from the environment. Every value is checked; the error says
// which flag is wrong and why.
func ParseOptions(args []string, lookupEnv func(string) (string, bool), usage io.Writer) (*Options, error) {
	o := &Options{}
	fs, paths := o.flagSet(usage)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := flagenv.Apply(fs, lookupEnv, EnvAliases); err != nil {
		return nil, err
	}
	var err error
	if o.UpdatePaths, err = nodeupdate.ParsePaths(*paths); err != nil {
		return nil, fmt.Errorf("invalid --in-place-update-paths: %w", err)
	}
	return o, o.Validate()
}

// EnvAliases are the environment variables, besides NODECYCLE_*, that set a
// flag: the downward API's.
var EnvAliases = map[string][]string{"node-name": {"NODE_NAME"}, "namespace": {"POD_NAMESPACE"}}

// FlagSet returns the agent's flags with their defaults (docs/reference.md
// is generated from it).
func FlagSet() *flag.FlagSet {
	fs, _ := (&Options{}).flagSet(io.Discard)
	return fs
}

// flagSet registers the agent's flags on o's fields; the in-place update
// paths are parsed after.
func (o *Options) flagSet(usage io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("nodecycle-agent", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Path to a kubeconfig; empty means in-cluster configuration.")
	fs.StringVar(&o.NodeName, "node-name", "", "Name of this node (required; NODE_NAME from the downward API also works).")
	fs.StringVar(&o.SentinelFile, "sentinel-file", DefaultSentinelFile, "File whose presence means a reboot is required, as seen inside the agent's container.")
	fs.StringVar(&o.SentinelCommand, "sentinel-command", "", "Shell command that exits 0 when a reboot is required; replaces --sentinel-file when set.")
	fs.DurationVar(&o.SentinelCommandTimeout, "sentinel-command-timeout", 30*time.Second, "Time limit of one run of --sentinel-command.")
	fs.BoolVar(&o.HostNamespaces, "host-namespaces", false, "Run --sentinel-command in the namespaces of the host's PID 1 through nsenter (needs hostPID and privileges).")
	fs.StringVar(&o.HostRoot, "host-root", "", "Where the node's root file system is mounted in the agent's container (a hostPath of /): in-place updates write their files under it. Empty: in-place updates are refused.")
	paths := fs.String("in-place-update-paths", strings.Join(nodeupdate.DefaultPaths, ","), "Comma-separated directories (ending in /) under which an in-place update may write its files; any other file is refused, whatever the manager asks.")
	fs.StringVar(&o.Namespace, "namespace", "nodecycle-system", "Namespace of the agent, where the cluster's request key (Secret "+signing.SecretName+") lives; POD_NAMESPACE from the downward API also works.")
	fs.DurationVar(&o.RecheckPeriod, "recheck-period", time.Minute, "Re-check the sentinel this often, in case a file event was missed.")
	fs.DurationVar(&o.HeartbeatPeriod, "heartbeat-period", 0, "Rewrite an unchanged RebootRequired condition this often; 0 (default) is off, otherwise at least 1h.")
	fs.StringVar(&o.RebootMethod, "reboot-method", "command", "How to reboot: command (run --reboot-command) or signal (SIGRTMIN+5 to PID 1).")
	fs.StringVar(&o.RebootCommand, "reboot-command", DefaultRebootCommand, "Shell command that reboots the node, for --reboot-method=command. The default enters PID 1's mount namespace (needs hostPID).")
	fs.DurationVar(&o.RebootCommandTimeout, "reboot-command-timeout", time.Minute, "Time limit of --reboot-command.")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint; 0 disables it.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz; 0 disables it.")
	fs.IntVar(&o.Verbosity, "v", 0, "Log verbosity.")
	return fs, paths
}

// Validate checks the options together.
func (o *Options) Validate() error {
	var errs []error
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name is required (or NODE_NAME from the downward API)"))
	}
	if o.SentinelCommand == "" && o.SentinelFile == "" {
		errs = append(errs, errors.New("one of --sentinel-file or --sentinel-command is required"))
	}
	if o.HostRoot != "" && !filepath.IsAbs(o.HostRoot) {
		errs = append(errs, fmt.Errorf("--host-root %q must be an absolute path", o.HostRoot))
	}
	if o.SentinelCommandTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--sentinel-command-timeout must be positive, got %s", o.SentinelCommandTimeout))
	}
	if o.RecheckPeriod < time.Second {
		errs = append(errs, fmt.Errorf("--recheck-period must be at least 1s, got %s", o.RecheckPeriod))
	}
	if o.HeartbeatPeriod != 0 && o.HeartbeatPeriod < MinHeartbeatPeriod {
		errs = append(errs, fmt.Errorf("--heartbeat-period must be 0 (off) or at least %s, got %s", MinHeartbeatPeriod, o.HeartbeatPeriod))
	}
	switch o.RebootMethod {
	case "command":
		if o.RebootCommand == "" {
			errs = append(errs, errors.New("--reboot-command is required with --reboot-method=command"))
		}
	case "signal":
	default:
		errs = append(errs, fmt.Errorf("--reboot-method must be command or signal, got %q", o.RebootMethod))
	}
	if o.RebootCommandTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--reboot-command-timeout must be positive, got %s", o.RebootCommandTimeout))
	}
	return errors.Join(errs...)
}

// Checker builds the configured sentinel check.
func (o *Options) Checker() Checker {
	if o.SentinelCommand != "" {
		return CommandChecker{Argv: HostCommand(o.SentinelCommand, o.HostNamespaces), Timeout: o.SentinelCommandTimeout}
	}
	return FileChecker{Path: o.SentinelFile}
}

// Rebooter builds the configured reboot method.
func (o *Options) Rebooter() Rebooter {
	if o.RebootMethod == "signal" {
		return SignalRebooter{}
	}
	return CommandRebooter{Argv: HostCommand(o.RebootCommand, false), Timeout: o.RebootCommandTimeout}
}

// WatchedFile is the file to watch with inotify, empty in command mode.
func (o *Options) WatchedFile() string {
	if o.SentinelCommand != "" {
		return ""
	}
	return o.SentinelFile
}
