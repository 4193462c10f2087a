package sim

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	addonsv1 "sigs.k8s.io/cluster-api/api/addons/v1beta2"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/controllers/clustercache"
	"sigs.k8s.io/cluster-api/core/reconcilers/clusterresourceset"
	"sigs.k8s.io/cluster-api/core/reconcilers/machine"
	"sigs.k8s.io/cluster-api/core/reconcilers/machinedeployment"
	"sigs.k8s.io/cluster-api/core/reconcilers/machinehealthcheck"
	"sigs.k8s.io/cluster-api/core/reconcilers/machineset"
	"sigs.k8s.io/cluster-api/core/setup"
	"sigs.k8s.io/cluster-api/feature"
	"sigs.k8s.io/cluster-api/util/index"
	"sigs.k8s.io/cluster-api/util/kubeconfig"
	"sigs.k8s.io/cluster-api/util/test/builder"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// ClusterAPIControllers runs Cluster API's own core controllers (Machine, MachineSet,
// MachineDeployment, ClusterResourceSet) in-process against a control plane, with a provisioner
// that plays the infrastructure and bootstrap providers: it marks their
// objects ready and registers each Machine's Node in its workload cluster,
// as a kubelet would.
type ClusterAPIControllers struct {
	Client client.Client
	config *rest.Config

	cache     clustercache.ClusterCache
	mu        sync.Mutex
	workloads map[client.ObjectKey]*rest.Config
	stop      func()
	done      chan struct{}
}

// NodeLabel is put on every Node the provisioner registers, for the
// simulated kubelets' selectors.
const NodeLabel = "nodecycle.test/provisioned"

var (
	infraMachineGVK     = builder.InfrastructureGroupVersion.WithKind(builder.GenericInfrastructureMachineKind)
	infraTemplateGVK    = builder.InfrastructureGroupVersion.WithKind(builder.GenericInfrastructureMachineTemplateKind)
	infraClusterGVK     = builder.InfrastructureGroupVersion.WithKind(builder.GenericInfrastructureClusterKind)
	bootstrapGVK        = builder.BootstrapGroupVersion.WithKind(builder.GenericBootstrapConfigKind)
	bootstrapTmplGVK    = builder.BootstrapGroupVersion.WithKind(builder.GenericBootstrapConfigTemplateKind)
	controlPlaneGVK     = builder.ControlPlaneGroupVersion.WithKind(builder.GenericControlPlaneKind)
	disableRateLimiting sync.Once
)

// ModuleDir is the directory of a module of the build ("" if the go
// command cannot say).
func ModuleDir(path string) string {
	dir, _ := moduleDir(path)
	return dir
}

func moduleDir(path string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", path).Output()
	if err != nil {
		return "", fmt.Errorf("finding the module %s: %w", path, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// ClusterAPICRDs are Cluster API's CRDs (from the module) and the generic
// provider CRDs of its test builder.
func ClusterAPICRDs() (envtest.CRDInstallOptions, error) {
	mod, err := moduleDir("sigs.k8s.io/cluster-api")
	if err != nil {
		return envtest.CRDInstallOptions{}, err
	}
	dir := mod + "/core/config/crd/bases"
	return envtest.CRDInstallOptions{
		// With the KubeadmControlPlane's, whose conditions a test sets as
		// its controller would.
		Paths:              []string{dir, mod + "/controlplane/kubeadm/config/crd/bases/controlplane.cluster.x-k8s.io_kubeadmcontrolplanes.yaml"},
		ErrorIfPathMissing: true,
		CRDs: []*apiextensionsv1.CustomResourceDefinition{
			builder.GenericBootstrapConfigCRD.DeepCopy(), builder.GenericBootstrapConfigTemplateCRD.DeepCopy(),
			builder.GenericInfrastructureMachineCRD.DeepCopy(), builder.GenericInfrastructureMachineTemplateCRD.DeepCopy(),
			builder.GenericInfrastructureClusterCRD.DeepCopy(), builder.GenericControlPlaneCRD.DeepCopy(),
		},
	}, nil
}

// StartClusterAPI installs the CRDs and starts the controllers.
func StartClusterAPI(cfg *rest.Config) (*ClusterAPIControllers, error) {
	return startClusterAPI(cfg, true)
}

// StartProviders installs the CRDs and starts only the provisioner that
// plays the infrastructure and bootstrap providers: Cluster API's core
// controllers run elsewhere (StartClusterAPIManager).
func StartProviders(cfg *rest.Config) (*ClusterAPIControllers, error) {
	return startClusterAPI(cfg, false)
}

func startClusterAPI(cfg *rest.Config, core bool) (*ClusterAPIControllers, error) {
	crds, err := ClusterAPICRDs()
	if err != nil {
		return nil, err
	}
	if _, err = envtest.InstallCRDs(cfg, crds); err != nil {
		return nil, fmt.Errorf("installing Cluster API CRDs: %w", err)
	}
	disableRateLimiting.Do(func() {
		// One reconcile per object and second would only slow the tests down.
		_ = feature.MutableGates.Set(string(feature.ReconcilerRateLimiting) + "=false")
	})
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = clusterv1.AddToScheme(scheme)
	_ = addonsv1.AddToScheme(scheme)
	_ = apiextensionsv1.AddToScheme(scheme)
	skip := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: &skip},
		Client:     setup.ManagerClientOptions(),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &ClusterAPIControllers{Client: mgr.GetClient(), config: cfg, workloads: map[client.ObjectKey]*rest.Config{}, stop: cancel, done: make(chan struct{})}
	if core {
		err = c.setup(ctx, mgr)
	}
	if err == nil {
		err = c.setupProvisioner(mgr)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer close(c.done)
		_ = mgr.Start(ctx)
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		cancel()
		return nil, fmt.Errorf("cluster API controllers' cache did not sync")
	}
	return c, nil
}

func (c *ClusterAPIControllers) setup(ctx context.Context, mgr ctrl.Manager) error {
	if err := index.AddDefaultIndexes(ctx, mgr); err != nil {
		return err
	}
	cc, err := clustercache.SetupWithManager(ctx, mgr, clustercache.Options{
		SecretClient: mgr.GetAPIReader(),
		Cache:        setup.ClusterCacheCacheOptions(),
		Client:       setup.ClusterCacheClientOptions("cluster-api-test", 100, 200),
	}, controller.Options{MaxConcurrentReconciles: 10})
	if err != nil {
		return err
	}
	c.cache = cc
	// The workload clusters' caches outlive the manager's context unless shut down.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		if s, ok := cc.(interface{ Shutdown() }); ok {
			s.Shutdown()
		}
		return nil
	})); err != nil {
		return err
	}
	opts := controller.Options{MaxConcurrentReconciles: 5}
	if err := (&machine.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), ClusterCache: cc, RemoteConditionsGracePeriod: 2 * time.Minute}).SetupWithManager(ctx, mgr, opts); err != nil {
		return fmt.Errorf("machine controller: %w", err)
	}
	if err := (&machineset.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), ClusterCache: cc}).SetupWithManager(ctx, mgr, opts); err != nil {
		return fmt.Errorf("machineset controller: %w", err)
	}
	if err := (&clusterresourceset.Reconciler{Client: mgr.GetClient(), ClusterCache: cc}).SetupWithManager(ctx, mgr, opts, mgr.GetCache()); err != nil {
		return fmt.Errorf("clusterresourceset controller: %w", err)
	}
	if err := (&machinedeployment.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(ctx, mgr, opts); err != nil {
		return fmt.Errorf("machinedeployment controller: %w", err)
	}
	if err := (&machinehealthcheck.Reconciler{Client: mgr.GetClient(), ClusterCache: cc}).SetupWithManager(ctx, mgr, opts); err != nil {
		return fmt.Errorf("machinehealthcheck controller: %w", err)
	}
	return nil
}

// Stop stops the controllers.
func (c *ClusterAPIControllers) Stop() {
	c.stop()
	<-c.done
}

// CreateCluster creates a provisioned, initialized Cluster whose workload
// cluster is the API server of workload (its kubeconfig Secret points there).
func (c *ClusterAPIControllers) CreateCluster(ctx context.Context, namespace, name string, workload *rest.Config) (*clusterv1.Cluster, error) {
	if err := c.ensureNamespace(ctx, namespace); err != nil {
		return nil, err
	}
	infra := &unstructured.Unstructured{}
	infra.SetGroupVersionKind(infraClusterGVK)
	infra.SetNamespace(namespace)
	infra.SetName(name)
	if err := c.Client.Create(ctx, infra); err != nil {
		return nil, fmt.Errorf("creating infrastructure cluster: %w", err)
	}
	// The Cluster is created paused and unpaused once its status says it is
	// provisioned: Cluster API's own Cluster controller, where it runs, would
	// otherwise write the status of a Cluster it read before that (control
	// plane not initialized) over it, and its Machines would never be
	// Available.
	cluster := &clusterv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: clusterv1.ClusterSpec{
			Paused: ptr.To(true),
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{
				APIGroup: infraClusterGVK.Group, Kind: infraClusterGVK.Kind, Name: name,
			},
		},
	}
	if err := c.Client.Create(ctx, cluster); err != nil {
		return nil, fmt.Errorf("creating Cluster: %w", err)
	}
	// The Secret comes before the Cluster is provisioned: a ClusterCache that
	// finds no Secret retries only after 30 s.
	secret := kubeconfig.GenerateSecret(cluster, kubeconfig.FromEnvTestConfig(workload, cluster))
	if err := c.Client.Create(ctx, secret); err != nil {
		return nil, fmt.Errorf("creating kubeconfig Secret: %w", err)
	}
	// Even paused, the Cluster controller writes the Paused condition: a
	// conflict is retried on the Cluster as it is now.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(cluster), cluster); err != nil {
			return err
		}
		return MarkProvisioned(ctx, c.Client, cluster)
	}); err != nil {
		return nil, err
	}
	if err := c.Client.Patch(ctx, cluster, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"paused":null}}`))); err != nil {
		return nil, fmt.Errorf("unpausing Cluster: %w", err)
	}
	c.mu.Lock()
	c.workloads[client.ObjectKeyFromObject(cluster)] = workload
	c.mu.Unlock()
	return cluster, nil
}

func (c *ClusterAPIControllers) ensureNamespace(ctx context.Context, name string) error {
	err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// DeleteCluster deletes a Cluster and waits until Cluster API's controllers
// let go of its workload cluster (before that API server is stopped).
func (c *ClusterAPIControllers) DeleteCluster(ctx context.Context, namespace, name string) error {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	if err := c.Client.Delete(ctx, &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}); client.IgnoreNotFound(err) != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.cache != nil {
		if _, err := c.cache.GetClient(ctx, key); err != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster cache still connected to %s", key)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
