package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/sets"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/secret"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// ErrNotConnected says a workload cluster has no connection now: not yet
// made, or dropped after failed health probes.
var ErrNotConnected = errors.New("connection to the workload cluster is down")

// Connections holds one connection per workload cluster of the Clusters
// nodecycle asked for (ConnectFilter). A connection is made from the
// Cluster's <cluster>-kubeconfig Secret once its infrastructure is
// provisioned, probed every ProbeInterval, dropped after FailureThreshold
// failed probes in a row or one refused as unauthorized (a rotated
// kubeconfig), and made again after RetryInterval. It is lean, as a
// manager holds a thousand of them: one HTTP transport without
// compression, the shared builtin REST mapper (no discovery), and a cache
// whose informers start with the first watch or read of a kind.
type Connections struct {
	mgmt    client.Reader
	secrets client.Reader
	scheme  *runtime.Scheme
	opts    ConnectionOptions

	mu    sync.RWMutex
	state map[client.ObjectKey]*connectionState

	sourcesMu sync.Mutex
	sources   []chan event.GenericEvent
}

// connectionState is what is known of one cluster's connection.
type connectionState struct {
	conn *connection // nil when not connected
	// failures counts failed connections and probes in a row.
	failures            int
	lastFailed, lastRun time.Time
}

// connection is a live connection to one workload cluster.
type connection struct {
	config       *rest.Config
	cached, live client.Client
	cache        cache.Cache
	probe        *rest.RESTClient
	stop         context.CancelFunc
	watches      sets.Set[string]
}

// NewConnections returns the connections of a manager's Clusters; mgmt
// reads the Clusters and secrets their kubeconfig Secrets.
func NewConnections(mgmt, secrets client.Reader, scheme *runtime.Scheme, opts ConnectionOptions) *Connections {
	opts.defaults()
	return &Connections{mgmt: mgmt, secrets: secrets, scheme: scheme, opts: opts, state: map[client.ObjectKey]*connectionState{}}
}

// SetupWithManager reconciles the manager's Clusters into connections and
// closes them all when the manager stops.
func (c *Connections) SetupWithManager(mgr manager.Manager, opts controller.Options) error {
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		c.Close()
		return nil
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("nodecycle-connections").For(&clusterv1.Cluster{}).WithOptions(opts).Complete(c)
}

// Reconcile connects to, probes and disconnects from one Cluster's workload cluster.
func (c *Connections) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	cl := &clusterv1.Cluster{}
	if err := c.mgmt.Get(ctx, req.NamespacedName, cl); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !ConnectFilter(cl) {
		c.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if !ptr.Deref(cl.Status.Initialization.InfrastructureProvisioned, false) {
		return ctrl.Result{}, nil // its update brings the Cluster back
	}
	s := c.stateOf(req.NamespacedName)
	now := time.Now()
	c.mu.RLock()
	conn, lastFailed, lastRun := s.conn, s.lastFailed, s.lastRun
	c.mu.RUnlock()
	if conn == nil {
		if wait := lastFailed.Add(c.opts.RetryInterval).Sub(now); !lastFailed.IsZero() && wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		made, err := c.connect(ctx, req.NamespacedName)
		c.mu.Lock()
		s.lastRun = now
		if err != nil {
			s.failures++
			s.lastFailed = now
			c.mu.Unlock()
			log.Info("Cannot connect to the workload cluster", "error", err.Error())
			return ctrl.Result{RequeueAfter: c.opts.RetryInterval}, nil
		}
		s.conn, s.failures, s.lastFailed = made, 0, time.Time{}
		c.mu.Unlock()
		log.Info("Connected to the workload cluster")
		c.notify(cl)
		return ctrl.Result{RequeueAfter: c.opts.ProbeInterval}, nil
	}
	if wait := lastRun.Add(c.opts.ProbeInterval).Sub(now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	err := c.probe(ctx, conn.probe)
	c.mu.Lock()
	s.lastRun = now
	if err == nil {
		s.failures = 0
		c.mu.Unlock()
		return ctrl.Result{RequeueAfter: c.opts.ProbeInterval}, nil
	}
	s.failures++
	failures := s.failures
	unauthorized := apierrors.IsUnauthorized(err)
	drop := unauthorized || s.failures >= c.opts.FailureThreshold
	if drop {
		conn.stop()
		s.conn, s.lastFailed = nil, now
		if unauthorized {
			s.lastFailed = time.Time{} // a rotated kubeconfig: connect again at once
		}
	}
	c.mu.Unlock()
	log.Info("Health probe of the workload cluster failed", "failures", failures, "disconnected", drop, "error", err.Error())
	if !drop {
		return ctrl.Result{RequeueAfter: c.opts.ProbeInterval}, nil
	}
	c.notify(cl)
	if unauthorized {
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	}
	return ctrl.Result{RequeueAfter: c.opts.RetryInterval}, nil
}

// connect makes a connection from the Cluster's kubeconfig Secret.
func (c *Connections) connect(ctx context.Context, key client.ObjectKey) (*connection, error) {
	s := &corev1.Secret{}
	if err := c.secrets.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: secret.Name(key.Name, secret.Kubeconfig)}, s); err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("the manager may not read Secret %s/%s: namespace %s has not opted in (kubectl create rolebinding nodecycle-manager -n %s --clusterrole nodecycle-manager-namespace --serviceaccount <manager namespace>:nodecycle-manager): %w",
				key.Namespace, secret.Name(key.Name, secret.Kubeconfig), key.Namespace, key.Namespace, err)
		}
		return nil, fmt.Errorf("reading the kubeconfig Secret: %w", err)
	}
	cfg, err := RESTConfigFromData(s.Data[secret.KubeconfigDataName])
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s: %w", s.Name, err)
	}
	cfg.UserAgent, cfg.Timeout, cfg.QPS, cfg.Burst = c.opts.UserAgent, c.opts.Timeout, c.opts.QPS, c.opts.Burst
	// Node events and the few lists nodecycle makes are small; a
	// compressed watch holds a gzip reader of about 100 KiB.
	cfg.DisableCompression = true
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("making an HTTP client: %w", err)
	}
	probeCfg := rest.CopyConfig(cfg)
	probeCfg.NegotiatedSerializer = serializer.NegotiatedSerializerWrapper(runtime.SerializerInfo{Serializer: runtime.NoopEncoder{Decoder: clientgoscheme.Codecs.UniversalDecoder()}})
	probe, err := rest.UnversionedRESTClientForConfigAndClient(probeCfg, hc)
	if err != nil {
		return nil, fmt.Errorf("making a REST client: %w", err)
	}
	if err = c.probe(ctx, probe); err != nil {
		return nil, fmt.Errorf("the cluster is not reachable: %w", err)
	}
	mapper, err := workloadMapper(cfg, hc)
	if err != nil {
		return nil, err
	}
	conn := &connection{config: cfg, probe: probe, watches: sets.New[string]()}
	if conn.live, err = client.New(cfg, client.Options{Scheme: c.scheme, Mapper: mapper, HTTPClient: hc}); err != nil {
		return nil, err
	}
	if conn.cache, err = c.newCache(ctx, cfg, mapper); err != nil {
		return nil, err
	}
	if conn.cached, err = client.New(cfg, client.Options{Scheme: c.scheme, Mapper: mapper, HTTPClient: hc,
		Cache: &client.CacheOptions{Reader: conn.cache, DisableFor: c.opts.Uncached, Unstructured: true}}); err != nil {
		return nil, err
	}
	cacheCtx, stop := context.WithCancel(context.Background())
	conn.stop = stop
	go func() { _ = conn.cache.Start(cacheCtx) }()
	return conn, nil
}

// probe asks the cluster's API server for / within ProbeTimeout.
func (c *Connections) probe(ctx context.Context, rc *rest.RESTClient) error {
	_, err := rc.Get().AbsPath("/").Timeout(c.opts.ProbeTimeout).DoRaw(ctx)
	return probeError(err)
}

// probeError keeps of an answer the status code and reason, never its
// body: the server is whatever a tenant wrote in its kubeconfig, and the
// error ends in Events the tenant reads (the manager reaches what Cluster
// API's own ClusterCache reaches, but does not read it back to anyone).
func probeError(err error) error {
	var st apierrors.APIStatus
	if err == nil || !errors.As(err, &st) {
		return err
	}
	s := st.Status()
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: s.Code, Reason: s.Reason,
		Message: fmt.Sprintf("the API server answered HTTP %d (%s)", s.Code, cmp.Or(string(s.Reason), "no reason"))}}
}

// newCache makes a cluster's cache. Lists of its informers may take long
// (no timeout but 11 minutes); watches end on their own every 5 to 10
// minutes and start again.
func (c *Connections) newCache(ctx context.Context, cfg *rest.Config, mapper meta.RESTMapper) (cache.Cache, error) {
	listCfg := rest.CopyConfig(cfg)
	listCfg.Timeout = 11 * time.Minute
	hc, err := rest.HTTPClientFor(listCfg)
	if err != nil {
		return nil, err
	}
	ca, err := cache.New(listCfg, cache.Options{HTTPClient: hc, Scheme: c.scheme, Mapper: mapper, DefaultTransform: c.opts.Transform})
	if err != nil {
		return nil, err
	}
	for _, i := range c.opts.Indexes {
		if err := ca.IndexField(ctx, i.Object, i.Field, i.Extract); err != nil {
			return nil, fmt.Errorf("indexing %s: %w", i.Field, err)
		}
	}
	return ca, nil
}

func (c *Connections) stateOf(key client.ObjectKey) *connectionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.state[key]
	if !ok {
		s = &connectionState{}
		c.state[key] = s
	}
	return s
}

// forget closes a cluster's connection and drops what is known of it.
func (c *Connections) forget(key client.ObjectKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.state[key]; ok && s.conn != nil {
		s.conn.stop()
	}
	delete(c.state, key)
}

// Close closes every connection.
func (c *Connections) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, s := range c.state {
		if s.conn != nil {
			s.conn.stop()
		}
		delete(c.state, key)
	}
}

// notify tells every cluster source that the cluster connected or disconnected.
func (c *Connections) notify(cl *clusterv1.Cluster) {
	c.sourcesMu.Lock()
	defer c.sourcesMu.Unlock()
	for _, ch := range c.sources {
		ch <- event.GenericEvent{Object: cl}
	}
}

// Source returns a source of the Clusters whose workload cluster connects
// or disconnects, mapped to requests by mapFunc.
func (c *Connections) Source(mapFunc handler.MapFunc) source.Source {
	c.sourcesMu.Lock()
	defer c.sourcesMu.Unlock()
	ch := make(chan event.GenericEvent)
	c.sources = append(c.sources, ch)
	return source.Channel(ch, handler.EnqueueRequestsFromMapFunc(mapFunc))
}

// get returns the cluster's live connection.
func (c *Connections) get(key client.ObjectKey) (*connection, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if s, ok := c.state[key]; ok && s.conn != nil {
		return s.conn, nil
	}
	return nil, fmt.Errorf("cluster %s: %w", key, ErrNotConnected)
}

// Failing says whether the cluster's last connection or probes failed.
func (c *Connections) Failing(key client.ObjectKey) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.state[key]
	return ok && s.failures > 0
}

// Clients returns the cluster's cached client, live client and REST config.
func (c *Connections) Clients(key client.ObjectKey) (cached client.Client, live client.Reader, cfg *rest.Config, err error) {
	conn, err := c.get(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return conn.cached, conn.live, conn.config, nil
}

// Config returns the cluster's REST config.
func (c *Connections) Config(key client.ObjectKey) (*rest.Config, error) {
	conn, err := c.get(key)
	if err != nil {
		return nil, err
	}
	return conn.config, nil
}

// Watch sends the events of obj's kind in the cluster to h of ctrl, once
// per name and connection.
func (c *Connections) Watch(key client.ObjectKey, name string, obj client.Object, ctrl controller.Controller, h handler.EventHandler) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.state[key]
	if !ok || s.conn == nil {
		return fmt.Errorf("watching %T of cluster %s: %w", obj, key, ErrNotConnected)
	}
	if s.conn.watches.Has(name) {
		return nil
	}
	if err := ctrl.Watch(source.Kind(s.conn.cache, obj, h)); err != nil {
		return fmt.Errorf("watching %T of cluster %s: %w", obj, key, err)
	}
	s.conn.watches.Insert(name)
	return nil
}
