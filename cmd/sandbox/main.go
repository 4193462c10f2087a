// Command sandbox runs nodecycle on a local cluster: a real control plane,
// kwok nodes, the real manager and agents, and a demo reboot.
//
//	sandbox [--nodes N] [--reboot-all] [--no-demo] [--duration D]
//	sandbox --cluster-api [--no-demo] [--duration D]
//	sandbox require-reboot NODE
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/nodecycle/nodecycle/test/framework/sandbox"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "sandbox:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "require-reboot" {
		if len(args) != 2 {
			return errors.New("usage: sandbox require-reboot NODE")
		}
		path, err := sandbox.SentinelPath(args[1])
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte("*** System restart required ***\n"), 0o644); err != nil {
			return err
		}
		fmt.Printf("Created %s; watch with: kubectl get nodecycles -A -w\n", path)
		return nil
	}
	var o sandbox.Options
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.IntVar(&o.Workers, "nodes", 2, "Number of worker nodes (besides control-plane-1).")
	fs.BoolVar(&o.RebootAll, "reboot-all", false, "Every worker needs a reboot: watch them go one at a time.")
	fs.BoolVar(&o.NoDemo, "no-demo", false, "Start the cluster only, no demo reboot.")
	fs.DurationVar(&o.Duration, "duration", 0, "Exit after this long (0: run until Ctrl-C).")
	clusterAPI := fs.Bool("cluster-api", false, "A Cluster API management cluster with two workload clusters (MachineDeployments opted in with reboot and replace) instead of one cluster.")
	fs.BoolVar(&o.EvictionRequests, "eviction-requests", false, "Kubernetes v1.38 with the EvictionRequest API: the drain asks through EvictionRequests, and a database pod on worker-1 holds its eviction for a few seconds through its responder (the local cluster only).")
	verbosity := fs.Int("v", -1, "Log the manager and agents to stderr at this verbosity (-1: no logs).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	o.Log = logr.Discard()
	if *verbosity >= 0 {
		o.Log = textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(*verbosity)))
	}
	ctrl.SetLogger(o.Log)
	klog.SetLogger(o.Log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := sandbox.Run
	if *clusterAPI {
		if o.EvictionRequests {
			return errors.New("--eviction-requests runs with the local cluster, not --cluster-api")
		}
		run = sandbox.RunClusterAPI
	}
	_, err := run(ctx, o)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}
