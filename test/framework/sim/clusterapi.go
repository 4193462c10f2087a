package sim

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
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
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
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
		Paths:              []string{dir},
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

func (c *ClusterAPIControllers) setupProvisioner(mgr ctrl.Manager) error {
	for _, gvk := range []schema.GroupVersionKind{infraMachineGVK, bootstrapGVK} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		if err := ctrl.NewControllerManagedBy(mgr).Named("provisioner-" + strings.ToLower(gvk.Kind)).For(u).Complete(reconcile.Func(c.provision)); err != nil {
			return err
		}
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

// MarkProvisioned writes the status of a Cluster whose infrastructure and
// control plane are up, as Cluster API's controllers would.
func MarkProvisioned(ctx context.Context, c client.Client, cluster *clusterv1.Cluster) error {
	now := metav1.Now()
	cluster.Status.Initialization = clusterv1.ClusterInitializationStatus{InfrastructureProvisioned: ptr.To(true), ControlPlaneInitialized: ptr.To(true)}
	cluster.Status.Conditions = []metav1.Condition{
		{Type: clusterv1.ClusterControlPlaneInitializedCondition, Status: metav1.ConditionTrue, Reason: "Initialized", LastTransitionTime: now},
		{Type: clusterv1.ClusterInfrastructureReadyCondition, Status: metav1.ConditionTrue, Reason: "Ready", LastTransitionTime: now},
	}
	if err := c.Status().Update(ctx, cluster); err != nil {
		return fmt.Errorf("marking Cluster provisioned: %w", err)
	}
	return nil
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

// CreateMachineDeployment creates a MachineDeployment of replicas Machines
// (rolling update, surge 1) with its provider templates.
func (c *ClusterAPIControllers) CreateMachineDeployment(ctx context.Context, namespace, cluster, name string, replicas int32, annotations map[string]string) (*clusterv1.MachineDeployment, error) {
	return c.CreateMachineDeploymentWith(ctx, namespace, cluster, name, replicas, annotations, PoolOptions{MaxSurge: 1})
}

// PoolOptions shape a MachineDeployment: its rolling update's surge and
// unavailability, and the spec of its bootstrap configuration template.
type PoolOptions struct {
	MaxSurge, MaxUnavailable int32
	BootstrapSpec            map[string]any
}

// CreateBootstrapTemplate creates a bootstrap configuration template whose
// spec.template.spec is spec.
func (c *ClusterAPIControllers) CreateBootstrapTemplate(ctx context.Context, namespace, name string, spec map[string]any) error {
	if spec == nil {
		spec = map[string]any{}
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"template": map[string]any{"spec": spec}}}}
	u.SetGroupVersionKind(bootstrapTmplGVK)
	u.SetNamespace(namespace)
	u.SetName(name)
	if err := c.Client.Create(ctx, u); err != nil {
		return fmt.Errorf("creating %s: %w", bootstrapTmplGVK.Kind, err)
	}
	return nil
}

// CreateMachineDeploymentWith creates a MachineDeployment of replicas
// Machines shaped by opts, with its provider templates.
func (c *ClusterAPIControllers) CreateMachineDeploymentWith(ctx context.Context, namespace, cluster, name string, replicas int32, annotations map[string]string, opts PoolOptions) (*clusterv1.MachineDeployment, error) {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{}}}}}
	u.SetGroupVersionKind(infraTemplateGVK)
	u.SetNamespace(namespace)
	u.SetName(name)
	if err := c.Client.Create(ctx, u); err != nil {
		return nil, fmt.Errorf("creating %s: %w", infraTemplateGVK.Kind, err)
	}
	if err := c.CreateBootstrapTemplate(ctx, namespace, name, opts.BootstrapSpec); err != nil {
		return nil, err
	}
	labels := map[string]string{"nodecycle.test/pool": name}
	md := &clusterv1.MachineDeployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations},
		Spec: clusterv1.MachineDeploymentSpec{
			ClusterName: cluster,
			Replicas:    ptr.To(replicas),
			Selector:    metav1.LabelSelector{MatchLabels: labels},
			Rollout: clusterv1.MachineDeploymentRolloutSpec{Strategy: clusterv1.MachineDeploymentRolloutStrategy{
				Type: clusterv1.RollingUpdateMachineDeploymentStrategyType,
				RollingUpdate: clusterv1.MachineDeploymentRolloutStrategyRollingUpdate{
					MaxSurge: ptr.To(intstr.FromInt32(opts.MaxSurge)), MaxUnavailable: ptr.To(intstr.FromInt32(opts.MaxUnavailable)),
				},
			}},
			Template: clusterv1.MachineTemplateSpec{
				ObjectMeta: clusterv1.ObjectMeta{Labels: labels},
				Spec: clusterv1.MachineSpec{
					ClusterName: cluster,
					Bootstrap: clusterv1.Bootstrap{ConfigRef: clusterv1.ContractVersionedObjectReference{
						APIGroup: bootstrapTmplGVK.Group, Kind: bootstrapTmplGVK.Kind, Name: name,
					}},
					InfrastructureRef: clusterv1.ContractVersionedObjectReference{
						APIGroup: infraTemplateGVK.Group, Kind: infraTemplateGVK.Kind, Name: name,
					},
				},
			},
		},
	}
	if err := c.Client.Create(ctx, md); err != nil {
		return nil, fmt.Errorf("creating MachineDeployment: %w", err)
	}
	return md, nil
}

// CreateControlPlaneMachine creates a control-plane Machine owned by a
// generic control-plane object carrying annotations. Cluster API drains and
// deletes a deleted Machine's Node only in a cluster with a control plane.
func (c *ClusterAPIControllers) CreateControlPlaneMachine(ctx context.Context, namespace, cluster, name string, annotations map[string]string) (*clusterv1.Machine, error) {
	cp := &unstructured.Unstructured{}
	cp.SetGroupVersionKind(controlPlaneGVK)
	cp.SetNamespace(namespace)
	cp.SetName(name)
	cp.SetAnnotations(annotations)
	if err := c.Client.Create(ctx, cp); err != nil {
		return nil, fmt.Errorf("creating control plane object: %w", err)
	}
	for _, gvk := range []schema.GroupVersionKind{infraMachineGVK, bootstrapGVK} {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{}}}
		u.SetGroupVersionKind(gvk)
		u.SetNamespace(namespace)
		u.SetName(name)
		if err := c.Client.Create(ctx, u); err != nil {
			return nil, fmt.Errorf("creating %s: %w", gvk.Kind, err)
		}
	}
	m := &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels: map[string]string{clusterv1.ClusterNameLabel: cluster, clusterv1.MachineControlPlaneLabel: ""},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: controlPlaneGVK.GroupVersion().String(), Kind: controlPlaneGVK.Kind, Name: name, UID: cp.GetUID(), Controller: ptr.To(true),
			}},
		},
		Spec: clusterv1.MachineSpec{
			ClusterName:       cluster,
			Bootstrap:         clusterv1.Bootstrap{ConfigRef: clusterv1.ContractVersionedObjectReference{APIGroup: bootstrapGVK.Group, Kind: bootstrapGVK.Kind, Name: name}},
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infraMachineGVK.Group, Kind: infraMachineGVK.Kind, Name: name},
		},
	}
	if err := c.Client.Create(ctx, m); err != nil {
		return nil, fmt.Errorf("creating control-plane Machine: %w", err)
	}
	return m, nil
}

// provision plays the providers for one infrastructure machine or
// bootstrap config: once Cluster API owns it, it is made ready; an
// infrastructure machine also gets a provider ID and a Ready Node.
func (c *ClusterAPIControllers) provision(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	for _, gvk := range []schema.GroupVersionKind{infraMachineGVK, bootstrapGVK} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		if err := c.Client.Get(ctx, req.NamespacedName, u); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return reconcile.Result{}, err
		}
		if !u.GetDeletionTimestamp().IsZero() {
			continue
		}
		m := machineOf(u)
		if m == "" {
			continue // not yet adopted by its Machine
		}
		var err error
		if gvk == bootstrapGVK {
			err = c.provisionBootstrap(ctx, u)
		} else {
			err = c.provisionInfra(ctx, u, m)
		}
		if err != nil {
			return reconcile.Result{}, err
		}
	}
	return reconcile.Result{}, nil
}

func machineOf(u *unstructured.Unstructured) string {
	for _, ref := range u.GetOwnerReferences() {
		if ref.Kind == "Machine" {
			return ref.Name
		}
	}
	return ""
}

func (c *ClusterAPIControllers) provisionBootstrap(ctx context.Context, u *unstructured.Unstructured) error {
	if done, _, _ := unstructured.NestedBool(u.Object, "status", "initialization", "dataSecretCreated"); done {
		return nil
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: u.GetNamespace(), Name: u.GetName()}, Data: map[string][]byte{"value": []byte("#cloud-config\n")}}
	if err := c.Client.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_ = unstructured.SetNestedField(u.Object, true, "status", "initialization", "dataSecretCreated")
	_ = unstructured.SetNestedField(u.Object, u.GetName(), "status", "dataSecretName")
	return c.Client.Status().Update(ctx, u)
}

func (c *ClusterAPIControllers) provisionInfra(ctx context.Context, u *unstructured.Unstructured, machineName string) error {
	if done, _, _ := unstructured.NestedBool(u.Object, "status", "initialization", "provisioned"); done {
		return nil
	}
	m := &clusterv1.Machine{}
	if err := c.Client.Get(ctx, types.NamespacedName{Namespace: u.GetNamespace(), Name: machineName}, m); err != nil {
		return client.IgnoreNotFound(err)
	}
	c.mu.Lock()
	workload := c.workloads[types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.ClusterName}]
	c.mu.Unlock()
	if workload == nil {
		return fmt.Errorf("no workload cluster registered for Cluster %s/%s", m.Namespace, m.Spec.ClusterName)
	}
	providerID := "test:///" + u.GetNamespace() + "/" + u.GetName()
	if err := registerNode(ctx, workload, u.GetName(), providerID); err != nil {
		return err
	}
	if err := unstructured.SetNestedField(u.Object, providerID, "spec", "providerID"); err != nil {
		return err
	}
	if err := c.Client.Update(ctx, u); err != nil {
		return err
	}
	_ = unstructured.SetNestedField(u.Object, true, "status", "initialization", "provisioned")
	return c.Client.Status().Update(ctx, u)
}

// registerNode creates the Node a kubelet would register: Ready, with a
// boot ID and the provider ID.
func registerNode(ctx context.Context, cfg *rest.Config, name, providerID string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, NodeLabel: "true"}},
		Spec:       corev1.NodeSpec{ProviderID: providerID},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("registering node %s: %w", name, err)
	}
	if err := registerStatus(ctx, cs, name); err != nil {
		return err
	}
	return SetNodeStatus(ctx, cs, name, uuid.NewString(), true)
}

// ReadyMachines returns the Machines of a MachineDeployment when there are
// n, none being deleted, each with a Ready Node in the workload cluster wc;
// otherwise an error saying what is missing.
func ReadyMachines(ctx context.Context, mgmt, wc client.Client, namespace, md string, n int) ([]clusterv1.Machine, error) {
	var list clusterv1.MachineList
	if err := mgmt.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: md}); err != nil {
		return nil, err
	}
	if len(list.Items) != n {
		return nil, fmt.Errorf("MachineDeployment %s has %d Machines, want %d", md, len(list.Items), n)
	}
	for _, m := range list.Items {
		if !m.DeletionTimestamp.IsZero() || !m.Status.NodeRef.IsDefined() {
			return nil, fmt.Errorf("machine %s is being deleted or has no node yet", m.Name)
		}
		node := &corev1.Node{}
		if err := wc.Get(ctx, client.ObjectKey{Name: m.Status.NodeRef.Name}, node); err != nil {
			return nil, err
		}
		if !nodes.IsReady(node) {
			return nil, fmt.Errorf("node %s is not Ready", node.Name)
		}
	}
	return list.Items, nil
}

// RequireReboot sets RebootRequired=True on a Node and records the boot
// it was checked on, as its agent would.
func RequireReboot(ctx context.Context, c client.Client, name string) error {
	node := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return err
	}
	want := corev1.NodeCondition{Type: v1alpha1.ConditionRebootRequired, Status: corev1.ConditionTrue, Reason: string(v1alpha1.ReasonSentinelFilePresent), Message: "/var/run/reboot-required exists"}
	patch := nodes.ConditionPatch(nodes.Condition(node, v1alpha1.ConditionRebootRequired), want, time.Now())
	if err := c.Status().Patch(ctx, node, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return err
	}
	boot := nodes.BootID(node)
	return nodes.SetAnnotations(ctx, c, node, map[string]*string{v1alpha1.AnnotationCheckedBoot: &boot})
}

// MachineHealthCheck is Cluster API's check of MachineDeployment md's
// Machines: a node NotReady (or Unknown) for 1 s is unhealthy. With a
// remediation template name, nodecycle's NodeCycleRemediationTemplate of
// that name remediates it; without, Cluster API replaces the Machine.
func MachineHealthCheck(namespace, cluster, md, remediationTemplate string) *clusterv1.MachineHealthCheck {
	mhc := &clusterv1.MachineHealthCheck{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: md},
		Spec: clusterv1.MachineHealthCheckSpec{
			ClusterName: cluster,
			Selector:    metav1.LabelSelector{MatchLabels: map[string]string{clusterv1.MachineDeploymentNameLabel: md}},
			Checks: clusterv1.MachineHealthCheckChecks{UnhealthyNodeConditions: []clusterv1.UnhealthyNodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionFalse, TimeoutSeconds: ptr.To(int32(1))},
				{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, TimeoutSeconds: ptr.To(int32(1))},
			}},
		},
	}
	if remediationTemplate != "" {
		mhc.Spec.Remediation.TemplateRef = clusterv1.MachineHealthCheckRemediationTemplateReference{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "NodeCycleRemediationTemplate", Name: remediationTemplate}
	}
	return mhc
}
