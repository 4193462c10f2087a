// Package localkube runs a local Kubernetes control plane from the binaries
// the Makefile builds: kube-apiserver and etcd through envtest, and
// kube-controller-manager, kube-scheduler or kwok as child processes. Tests
// and the sandbox use it.
package localkube

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nodecycle/nodecycle/internal/scheme"
)

// RepoRoot is the directory of the nodecycle module.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Versions of the tools, as the Makefile builds them. NextKubeVersion is
// the control plane of the cooperative-drain tests: the first release whose
// kube-controller-manager turns EvictionRequests into Evictions.
const (
	KubeVersion     = "v1.37.2"
	NextKubeVersion = "v1.38.0-beta.0"
	EtcdVersion     = "v3.6.16"
)

// Assets is the directory of the control-plane binaries: KUBEBUILDER_ASSETS
// when set, otherwise where `make tools` puts them.
func Assets() string {
	if a := os.Getenv("KUBEBUILDER_ASSETS"); a != "" {
		return a
	}
	return cachedAssets(KubeVersion)
}

// NextAssets is the directory of kube-apiserver, kube-controller-manager
// and etcd of NextKubeVersion: NODECYCLE_NEXT_ASSETS when set, otherwise
// where `make tools` puts them.
func NextAssets() string {
	if a := os.Getenv("NODECYCLE_NEXT_ASSETS"); a != "" {
		return a
	}
	return cachedAssets(NextKubeVersion)
}

func cachedAssets(kube string) string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "nodecycle", "assets-kube-"+kube+"-versioned-etcd-"+EtcdVersion)
}

// EvictionRequestGate is the feature gate of lifecycle.k8s.io/v1alpha1.
const EvictionRequestGate = "EvictionRequestAPI=true"

// EvictionRequestControllers are the kube-controller-manager controllers of
// a cooperative drain: requests into Evictions, the default responder that
// calls the Eviction API, and PDB status for it.
var EvictionRequestControllers = []string{"evictionrequest-controller", "imperative-eviction-responder-controller", "disruption-controller"}

// StartEvictionRequests runs kube-apiserver and etcd of NextKubeVersion;
// with gate, the API server serves lifecycle.k8s.io/v1alpha1
// (EvictionRequests and Evictions) and StartControllers runs the
// controller manager with the gate on too.
func StartEvictionRequests(gate bool) (*Env, error) {
	var args map[string]string
	if gate {
		args = map[string]string{"feature-gates": EvictionRequestGate, "runtime-config": "lifecycle.k8s.io/v1alpha1=true"}
	}
	e, err := startFrom(NextAssets(), args)
	if err != nil {
		return nil, err
	}
	if gate {
		e.controllerArgs = []string{"--feature-gates=" + EvictionRequestGate}
	}
	return e, nil
}

// Env is a running control plane.
type Env struct {
	Env       *envtest.Environment
	Config    *rest.Config
	Client    client.Client
	Clientset kubernetes.Interface
	// Dir holds kubeconfigs and logs of the extra components.
	Dir   string
	procs []*process
	// assets holds the binaries; controllerArgs are more flags of
	// kube-controller-manager.
	assets         string
	controllerArgs []string
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error
}

// Start runs kube-apiserver and etcd, bound to loopback, with the
// nodecycle CRDs installed.
func Start() (*Env, error) { return StartWith(nil) }

// StartWith is Start with extra kube-apiserver flags (name without dashes).
func StartWith(apiserverArgs map[string]string) (*Env, error) {
	return startFrom(Assets(), apiserverArgs)
}

func startFrom(assets string, apiserverArgs map[string]string) (*Env, error) {
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run 'make tools' (it builds the control plane from the Go module proxy, about 15 minutes once)", bin, assets)
		}
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: time.Minute,
	}
	args := te.ControlPlane.GetAPIServer().Configure()
	for k, v := range apiserverArgs {
		args.Set(k, v)
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "nodecycle-env-")
	if err != nil {
		return nil, err
	}
	return &Env{Env: te, Config: cfg, Client: c, Clientset: kubernetes.NewForConfigOrDie(cfg), Dir: dir, assets: assets}, nil
}

// AdminKubeconfig writes a kubeconfig of a cluster admin into the
// environment's directory, once, and returns its path.
func (e *Env) AdminKubeconfig() (string, error) {
	path := filepath.Join(e.Dir, "admin.kubeconfig")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	user, err := e.Env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, kc, 0o600)
}

// DefaultControllers are the kube-controller-manager controllers the tests
// need: Deployments, ReplicaSets and PDB status come from the real ones.
var DefaultControllers = []string{"deployment-controller", "replicaset-controller", "disruption-controller"}

// StartControllers runs kube-controller-manager with the given controllers
// and kube-scheduler against the API server.
func (e *Env) StartControllers(controllers ...string) error {
	if len(controllers) == 0 {
		controllers = DefaultControllers
	}
	path, err := e.AdminKubeconfig()
	if err != nil {
		return err
	}
	if err := e.StartProcess("kube-controller-manager", append([]string{
		"--kubeconfig=" + path, "--leader-elect=false", "--secure-port=0",
		"--controllers=" + strings.Join(controllers, ","),
		"--concurrent-deployment-syncs=5", "--concurrent-replicaset-syncs=5"}, e.controllerArgs...)...); err != nil {
		return err
	}

	return e.StartProcess("kube-scheduler",
		"--kubeconfig="+path, "--authentication-kubeconfig="+path, "--authorization-kubeconfig="+path,
		"--leader-elect=false", "--secure-port=0")
}

// StartClusterAPIManager runs Cluster API's own core manager (built by
// make tools at the go.mod version) against the API server, with the
// feature gates gates (Cluster API's --feature-gates syntax) and without
// rate limiting. Its webhook server gets a certificate of its own; no
// webhook is registered with the API server.
func (e *Env) StartClusterAPIManager(gates string, args ...string) error {
	path, err := e.AdminKubeconfig()
	if err != nil {
		return err
	}
	certs := filepath.Join(e.Dir, "cluster-api-webhook")
	if _, err = ServingCert(certs); err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	return e.StartProcess("cluster-api-manager", append([]string{"--kubeconfig=" + path,
		"--feature-gates=ReconcilerRateLimiting=false," + gates,
		"--webhook-cert-dir=" + certs, fmt.Sprintf("--webhook-port=%d", port),
		"--diagnostics-address=0", "--health-addr=0", "--leader-elect=false",
		"--skip-crd-migration-phases=StorageVersionMigration,CleanupManagedFields"}, args...)...)
}

// Log is the output of the process name so far.
func (e *Env) Log(name string) string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, name+".log"))
	return string(b)
}

// StartProcess runs one of the binaries of the environment's assets (or,
// for one it lacks, such as kube-scheduler and kwok beside NextKubeVersion,
// of Assets()) with its output in
// <Dir>/<name>.log, until Stop.
func (e *Env) StartProcess(name string, args ...string) error {
	bin := filepath.Join(e.assets, name)
	if _, err := os.Stat(bin); err != nil {
		if bin = filepath.Join(Assets(), name); !exists(bin) {
			return fmt.Errorf("%s not found in %s nor %s: run 'make tools'", name, e.assets, Assets())
		}
	}
	logf, err := os.Create(filepath.Join(e.Dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	e.procs = append(e.procs, p)
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return nil
}

// Exited reports the first child process that is no longer running.
func (e *Env) Exited() error {
	for _, p := range e.procs {
		select {
		case <-p.done:
			status := "exit status 0"
			if p.err != nil {
				status = p.err.Error()
			}
			return fmt.Errorf("%s exited (%s); see %s", p.name, status, filepath.Join(e.Dir, p.name+".log"))
		default:
		}
	}
	return nil
}

// Stop ends every process of the environment.
func (e *Env) Stop() error {
	for _, p := range e.procs {
		_ = p.cmd.Process.Kill()
	}
	for _, p := range e.procs {
		<-p.done
	}
	err := e.Env.Stop()
	_ = os.RemoveAll(e.Dir)
	return err
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
