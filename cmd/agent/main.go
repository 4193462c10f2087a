// Command agent is the nodecycle node agent, run as a DaemonSet: it publishes
// the RebootRequired condition of its node and reboots it when asked.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/textlogger"

	"github.com/nodecycle/nodecycle/internal/agent"
	"github.com/nodecycle/nodecycle/internal/kubeconfig"
	"github.com/nodecycle/nodecycle/internal/version"
)

func main() {
	if err := run(); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "nodecycle-agent:", err)
		}
		os.Exit(2)
	}
}

func run() error {
	if version.Requested(os.Args[1:]) {
		fmt.Println("nodecycle-agent", version.Version)
		return nil
	}
	opts, err := agent.ParseOptions(os.Args[1:], os.LookupEnv, os.Stderr)
	if err != nil {
		return err
	}
	log := textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(opts.Verbosity)))
	log.Info("nodecycle-agent", "version", version.Version)

	cfg, err := kubeconfig.Load(opts.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.UserAgent = "nodecycle-agent/" + version.Version
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating API client: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &agent.Agent{
		NodeName:        opts.NodeName,
		Client:          client,
		Checker:         opts.Checker(),
		Rebooter:        opts.Rebooter(),
		SentinelFile:    opts.WatchedFile(),
		RecheckPeriod:   opts.RecheckPeriod,
		HeartbeatPeriod: opts.HeartbeatPeriod,
		HostRoot:        opts.HostRoot,
		UpdatePaths:     opts.UpdatePaths,
		Namespace:       opts.Namespace,
		Metrics:         agent.NewMetrics(reg),
		Log:             log,
	}
	ready := a.Ready() // taken before the probe server reads it from its own goroutine

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	serve(ctx, log, opts.MetricsAddr, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	probes := http.NewServeMux()
	probes.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	probes.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-ready:
			_, _ = w.Write([]byte("ok"))
		default:
			http.Error(w, "not synced yet", http.StatusServiceUnavailable)
		}
	})
	serve(ctx, log, opts.ProbeAddr, "/", probes)
	return a.Run(ctx)
}

// serve runs an HTTP server on addr until ctx ends; "0" disables it.
func serve(ctx context.Context, log logr.Logger, addr, pattern string, h http.Handler) {
	if addr == "0" || addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.Handle(pattern, h)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "HTTP server stopped", "address", addr)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
}
