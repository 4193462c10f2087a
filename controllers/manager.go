package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/nodecycle/nodecycle/controllers/nodecycle"
	"github.com/nodecycle/nodecycle/controllers/policy"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/cycles"
	"github.com/nodecycle/nodecycle/internal/metricsauth"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/notify"
	"github.com/nodecycle/nodecycle/internal/printable"
	"github.com/nodecycle/nodecycle/internal/scheme"
	"github.com/nodecycle/nodecycle/power/all"
)

// A mode is where the nodes nodecycle handles live: the cluster the
// manager runs in (mode_local.go), or the workload clusters of a Cluster
// API management cluster (mode_clusterapi.go). A third mode is one more
// file with a type that implements it, and a case in modeOf.
type mode interface {
	// check runs before the manager is built: the cluster serves what the
	// mode needs.
	check(cfg *rest.Config) error
	// cache adds to the manager's cache settings what the mode reads.
	cache(byObject map[client.Object]cache.ByObject)
	// setup adds the mode's indexes and reconcilers, and returns the
	// nodes' Clusters and the resolver of on-demand requests.
	setup(ctx context.Context, mgr ctrl.Manager, opener cycles.Opener) (cluster.Clusters, nodecycle.Resolver, error)
}

// modeOf is the mode the options ask for.
func modeOf(o *Options) mode {
	if o.ClusterAPI {
		return clusterAPIMode{o: o}
	}
	return localMode{namespace: o.Controllers.Namespace}
}

// controllerConfig are the settings of all the manager's controllers.
func controllerConfig(o *Options) config.Controller {
	return config.Controller{
		SkipNameValidation: &o.SkipNameValidation,
		// controller-runtime's 2 minutes are too short for the first list of
		// a large management cluster (50,000 Machines in the fleet
		// benchmark): the manager exited and started over, never syncing.
		CacheSyncTimeout: 10 * time.Minute,
	}
}

// Scheme holds the types the manager reads and writes (internal/scheme,
// which the development harness uses without the manager's wiring).
func Scheme() *runtime.Scheme { return scheme.New() }

// New builds the manager with its reconcilers. clk is the clock of the
// reconcilers (a fake one in tests).
func New(ctx context.Context, cfg *rest.Config, o *Options, clk clock.PassiveClock) (ctrl.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "nodecycle-manager"
	}
	cfg.QPS, cfg.Burst = float32(o.QPS), o.Burst
	m := modeOf(o)
	if err := m.check(cfg); err != nil {
		return nil, err
	}
	byObject := map[client.Object]cache.ByObject{
		&corev1.Node{}: {Transform: nodes.Strip},
		// The manager's own Namespace, whose nodecycle.io/paused pauses
		// everything: watched, not read at every admission.
		&corev1.Namespace{}: {Field: fields.OneTermEqualSelector("metadata.name", o.Controllers.Namespace)},
	}
	m.cache(byObject)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme(),
		Metrics:                 metricsOptions(o),
		HealthProbeBindAddress:  o.ProbeAddr,
		PprofBindAddress:        o.ProfilerAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "nodecycle-manager.nodecycle.io",
		LeaderElectionNamespace: o.LeaderElectNS,
		// A new leader must not act on a cache older than the old leader's writes.
		LeaderElectionReleaseOnCancel: true,
		Controller:                    controllerConfig(o),
		Cache: cache.Options{
			// Nothing reads managedFields, a large part of each cached Machine.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject:         byObject,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err = cycles.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	recorder := mgr.GetEventRecorder("nodecycle-manager")
	registry := all.Registry()
	reg := o.Registry
	if reg == nil {
		reg = metrics.Registry
	}
	if o.NotificationSecret != "" {
		n, nerr := notify.New(mgr.GetAPIReader(), o.Controllers.Namespace, o.NotificationSecret, o.NotificationReasons, o.NotificationTemplate,
			recorder, ctrl.Log.WithName("notify"), reg)
		if nerr != nil {
			return nil, nerr
		}
		if err = mgr.Add(manager.RunnableFunc(n.Start)); err != nil {
			return nil, err
		}
		recorder = n.Wrap(recorder)
	}
	// Outermost: Events and notifications quote what users wrote.
	recorder = printable.Recorder(recorder)
	opener := cycles.Opener{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder, Clock: clk, Config: o.Controllers}
	clusters, requests, err := m.setup(ctx, mgr, opener)
	if err != nil {
		return nil, fmt.Errorf("setting up controllers: %w", err)
	}
	ncr := nodecycle.New(mgr.GetClient(), mgr.GetAPIReader(), recorder, clk, o.Controllers, clusters, registry, nodecycle.NewMetrics(reg, clusters))
	ncr.Requests = requests
	nodecycle.RegisterGateMetrics(reg, mgr.GetClient(), o.Controllers.Freezes, clk)
	if err := ncr.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up controllers: %w", err)
	}
	if err := (&policy.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder, Providers: registry, Namespace: o.Controllers.Namespace,
		AlertmanagerURLs: o.Controllers.AlertmanagerURLs,
		PrometheusURLs:   o.Controllers.PrometheusURLs,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up policy controller: %w", err)
	}
	if err := errors.Join(mgr.AddHealthzCheck("healthz", healthz.Ping), mgr.AddReadyzCheck("readyz", healthz.Ping)); err != nil {
		return nil, fmt.Errorf("adding health checks: %w", err)
	}
	return mgr, nil
}

// metricsOptions serves /metrics: by default over HTTPS, authenticated
// (TokenReview) and authorized (SubjectAccessReview) by the API server.
func metricsOptions(o *Options) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.MetricsAddr}
	if o.MetricsSecure {
		opts.SecureServing = true
		opts.FilterProvider = metricsauth.Filter
	}
	return opts
}
