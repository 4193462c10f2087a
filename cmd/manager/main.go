// Command manager is the nodecycle manager: it takes nodes that need a reboot
// through drain, reboot, verification and uncordon, one at a time per cluster.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"k8s.io/klog/v2/textlogger"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/internal/kubeconfig"
	"github.com/nodecycle/nodecycle/internal/version"
)

func main() {
	if err := run(); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "nodecycle-manager:", err)
		}
		os.Exit(2)
	}
}

func run() error {
	if version.Requested(os.Args[1:]) {
		fmt.Println("nodecycle-manager", version.Version)
		return nil
	}
	opts, err := controllers.ParseOptions(os.Args[1:], os.LookupEnv, os.Stderr)
	if err != nil {
		return err
	}
	ctrl.SetLogger(textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(opts.Verbosity))))
	ctrl.Log.Info("nodecycle-manager", "version", version.Version)
	if soft := controllers.SoftMemoryLimit(opts.MemoryLimit, os.LookupEnv); soft > 0 {
		debug.SetMemoryLimit(soft)
		ctrl.Log.Info("Soft memory limit set", "bytes", soft, "containerLimit", opts.MemoryLimit)
	}
	cfg, err := kubeconfig.Load(opts.Kubeconfig)
	if err != nil {
		return err
	}
	ctx := ctrl.SetupSignalHandler()
	mgr, err := controllers.New(ctx, cfg, opts, clock.RealClock{})
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}
