// Package inplace tests nodecycle as Cluster API's in-place update
// extension: Cluster API's own core manager (the released binary, with the
// RuntimeSDK and InPlaceUpdates gates on) rolls MachineDeployments on a
// real kube-apiserver and calls nodecycle's hooks over TLS, registered by
// an ExtensionConfig; the nodes' agents are nodecycle's own, writing the
// updates' files into a directory per node, and a simulated kubelet
// reboots a node when its agent acknowledges the request.
package inplace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	runtimev1 "sigs.k8s.io/cluster-api/api/runtime/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/controllers/agentinstall"
	"github.com/nodecycle/nodecycle/internal/agent"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

var (
	// port is nodecycle's hook server's; clientCerts holds Cluster API's
	// client certificate.
	port        int
	clientCerts string

	env  *localkube.Env
	capi *sim.ClusterAPIControllers
	k8s  client.Client
	cs   kubernetes.Interface
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	framework.SetLogger(logFile())
	var err error
	if env, err = localkube.Start(); err != nil {
		return 1, err
	}
	defer func() { _ = env.Stop() }()
	if capi, err = sim.StartProviders(env.Config); err != nil {
		return 1, err
	}
	defer capi.Stop()
	// The hooks' mutual TLS: one CA for nodecycle's serving certificate
	// and Cluster API's client certificate, as config/in-place-updates
	// makes them with cert-manager.
	certs := filepath.Join(env.Dir, "in-place-updates")
	clientCerts = filepath.Join(env.Dir, "in-place-updates-client")
	ca, err := localkube.MutualTLS(certs, clientCerts)
	if err != nil {
		return 1, err
	}
	if err = env.StartClusterAPIManager("RuntimeSDK=true,InPlaceUpdates=true",
		"--runtime-extension-client-cert-file="+filepath.Join(clientCerts, "tls.crt"),
		"--runtime-extension-client-key-file="+filepath.Join(clientCerts, "tls.key")); err != nil {
		return 1, err
	}
	scheme := controllers.Scheme()
	_ = runtimev1.AddToScheme(scheme)
	if k8s, err = client.New(env.Config, client.Options{Scheme: scheme}); err != nil {
		return 1, err
	}
	cs = kubernetes.NewForConfigOrDie(env.Config)

	// The workload cluster's agent objects, as the manager installs them
	// (config/workload: service account, RBAC, admission policy); the
	// agents run with their own bound tokens through them.
	if err = installAgent(context.Background()); err != nil {
		return 1, err
	}

	// nodecycle's manager, serving the hooks to Cluster API's client
	// certificate only.
	port, err = localkube.FreePort()
	if err != nil {
		return 1, err
	}
	// The manager as installed: config/in-place-updates' RBAC and admission
	// policies, a token of its service account.
	asManager, err := installManager(context.Background())
	if err != nil {
		return 1, err
	}
	stop, _, err := framework.StartManager(asManager, os.Stderr, "--cluster-api", "--agent-pod-selector=", "--install-agent=false",
		"--leader-elect=true", "--leader-election-namespace=nodecycle-system",
		fmt.Sprintf("--in-place-updates-port=%d", port), "--in-place-updates-cert-dir="+certs, "--in-place-update-poll=1s",
		"--reboot-timeout=30s", "--drain-timeout=30s")
	if err != nil {
		return 1, err
	}
	defer func() { _ = stop() }()

	// The ExtensionConfig that registers it, as an operator would apply it.
	ctx := context.Background()
	ext := &runtimev1.ExtensionConfig{}
	ext.Name = "nodecycle"
	ext.Spec.ClientConfig = runtimev1.ClientConfig{URL: fmt.Sprintf("https://127.0.0.1:%d", port), CABundle: ca}
	// Every namespace (Cluster API's defaulting webhook, not run here,
	// would set the same).
	ext.Spec.NamespaceSelector = &metav1.LabelSelector{}
	if err := k8s.Create(ctx, ext); err != nil {
		return 1, fmt.Errorf("creating the ExtensionConfig: %w", err)
	}
	if err := discovered(ctx, ext); err != nil {
		return 1, err
	}
	return m.Run(), nil
}

// discovered waits until Cluster API's manager discovered the extension's
// three handlers.
func discovered(ctx context.Context, ext *runtimev1.ExtensionConfig) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := env.Exited(); err != nil {
			return err
		}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ext), ext); err != nil {
			return err
		}
		if len(ext.Status.Handlers) == 3 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ExtensionConfig %s not discovered: status %+v; Cluster API's log:\n%s", ext.Name, ext.Status, tail(env.Log("cluster-api-manager"), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// pool is a MachineDeployment's nodes: a kubelet that reboots a node when
// its agent acknowledges the request, and nodecycle's agent on each node,
// with the node's root file system a directory of the test.
type pool struct {
	t       *testing.T
	kubelet *sim.Kubelet
	roots   map[string]string
	cancel  map[string]context.CancelFunc
}

func startPool(t *testing.T) *pool {
	t.Helper()
	p := &pool{t: t, roots: map[string]string{}, cancel: map[string]context.CancelFunc{},
		kubelet: &sim.Kubelet{Client: cs, Selector: labels.SelectorFromSet(labels.Set{sim.NodeLabel: "true"}), DownTime: 300 * time.Millisecond}}
	ctx, cancel := context.WithCancel(context.Background())
	go p.kubelet.Run(ctx)
	t.Cleanup(func() {
		cancel()
		for _, c := range p.cancel {
			c()
		}
	})
	return p
}

// managerKinds are the objects of config/in-place-updates applied here:
// its identity and what confines it. The Deployment and Service are
// played by the in-process manager, cert-manager's objects by the test's
// certificates, the ExtensionConfig by run's.
var managerKinds = map[string]bool{"Namespace": true, "ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"Role": true, "RoleBinding": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true, "NetworkPolicy": true}

// installManager applies config/in-place-updates' identity, RBAC and
// admission policies (as kubectl apply -k does), and returns the
// manager's client configuration: a token of its service account, nothing
// else.
func installManager(ctx context.Context) (*rest.Config, error) {
	out, err := exec.Command(filepath.Join(localkube.Assets(), "kubectl"), "kustomize", filepath.Join(localkube.RepoRoot(), "config", "in-place-updates")).Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize config/in-place-updates: %w", err)
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		o := &unstructured.Unstructured{}
		if err := dec.Decode(&o.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		if !managerKinds[o.GetKind()] {
			continue
		}
		if err := k8s.Patch(ctx, o, client.Apply, client.FieldOwner("installer"), client.ForceOwnership); err != nil { //nolint:staticcheck // applied as kubectl apply does
			return nil, fmt.Errorf("applying %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return localkube.As(ctx, env.Config, "nodecycle-system", "nodecycle-manager", "", nil)
}

// optIn lets the manager into namespace, as docs/clusterapi.md says an operator
// does: the ClusterRole nodecycle-manager-namespace bound there (the
// namespace is made first when it is new).
func optIn(ctx context.Context, namespace string) error {
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	err := k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "nodecycle-manager"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "nodecycle-manager-namespace"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "nodecycle-system", Name: "nodecycle-manager"}},
	})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// installAgent applies config/workload's agent objects, as the manager
// does to a workload cluster (the DaemonSet's pods never run here: no
// kubelet; the agents run in the test with the tokens of such pods).
func installAgent(ctx context.Context) error {
	objs, err := agentinstall.Objects("nodecycle.test/agent", "enabled")
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := k8s.Patch(ctx, o, client.Apply, client.FieldOwner("installer"), client.ForceOwnership); err != nil { //nolint:staticcheck // the test applies as the installer does
			return fmt.Errorf("applying %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// startAgent runs the agent of node (again), its updates written under
// root ("" : an agent that refuses updates), as its pod would run it: the
// agent's service account, a token bound to a pod on node, the installed
// RBAC and admission policy.
func (p *pool) startAgent(node, root string) {
	p.t.Helper()
	if c := p.cancel[node]; c != nil {
		c()
	}
	ds, err := cs.AppsV1().DaemonSets(cluster.WorkloadAgentNamespace).Get(context.Background(), "nodecycle-agent", metav1.GetOptions{})
	if err != nil {
		p.t.Fatal(err)
	}
	owner := metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))
	cfg, err := localkube.As(context.Background(), env.Config, cluster.WorkloadAgentNamespace, "nodecycle-agent", node, owner)
	if err != nil {
		p.t.Fatal(err)
	}
	a := &agent.Agent{NodeName: node, Client: kubernetes.NewForConfigOrDie(cfg), Namespace: cluster.WorkloadAgentNamespace, Checker: agent.FileChecker{Path: filepath.Join(p.t.TempDir(), "reboot-required")},
		Rebooter: rebooter{}, RecheckPeriod: time.Hour, HostRoot: root,
		Log: funcr.New(func(prefix, args string) { p.t.Logf("agent %s: %s", node, args) }, funcr.Options{})}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel[node] = cancel
	ready := a.Ready()
	go func() { _ = a.Run(ctx) }()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("agent of %s not ready", node)
	}
	p.roots[node] = root
}

// rebooter leaves the reboot to the simulated kubelet, which sees the ack.
type rebooter struct{}

func (rebooter) Reboot(context.Context) error { return nil }

// logFile is where nodecycle's manager logs: NODECYCLE_TEST_LOG, or nowhere.
func logFile() io.Writer {
	if path := os.Getenv("NODECYCLE_TEST_LOG"); path != "" {
		if f, err := os.Create(path); err == nil {
			return f
		}
	}
	return io.Discard
}
