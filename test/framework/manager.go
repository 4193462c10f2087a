package framework

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/nodecycle/nodecycle/controllers"
)

// SetLogger sends controller-runtime's and klog's logs to w.
func SetLogger(w io.Writer) {
	logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(w), textlogger.Verbosity(0)))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
}

// StartManager runs the real manager in-process against cfg with args
// after the test defaults (no metrics or probe listener, no leader
// election), until stop is called; stop returns what the manager's Start
// returned. metrics is the registry of the manager's own metrics.
func StartManager(cfg *rest.Config, usage io.Writer, args ...string) (stop func() error, metrics *prometheus.Registry, err error) {
	all := append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0", "--leader-elect=false"}, args...)
	opts, err := controllers.ParseOptions(all, func(string) (string, bool) { return "", false }, usage)
	if err != nil {
		return nil, nil, err
	}
	metrics = prometheus.NewRegistry()
	opts.Registry, opts.SkipNameValidation = metrics, true
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := controllers.New(ctx, cfg, opts, clock.RealClock{})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			return errors.New("the manager did not stop within a minute of its context's end (a cache that never synced?)")
		}
	}, metrics, nil
}
