package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nodecycle/nodecycle/internal/manager"
)

// RepoRoot is the directory of the nodecycle module.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Env is a running control plane.
type Env struct {
	Env       *envtest.Environment
	Config    *rest.Config
	Client    client.Client
	Clientset kubernetes.Interface
	// Dir holds kubeconfigs and logs of the extra components.
	Dir   string
	procs []*exec.Cmd
}

// Start runs kube-apiserver and etcd from KUBEBUILDER_ASSETS with the
// nodecycle CRDs installed.
func Start() (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run the tests through 'make test', which builds kube-apiserver and etcd")
	}
	te := &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: time.Minute,
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	c, err := client.New(cfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "nodecycle-env-")
	if err != nil {
		return nil, err
	}
	return &Env{Env: te, Config: cfg, Client: c, Clientset: kubernetes.NewForConfigOrDie(cfg), Dir: dir}, nil
}

// StartControllers runs kube-controller-manager (deployment, replicaset and
// disruption controllers: PDB status is computed by the real one) and
// kube-scheduler against the API server.
func (e *Env) StartControllers() error {
	user, err := e.Env.AddUser(envtest.User{Name: "control-plane", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	path := filepath.Join(e.Dir, "control-plane.kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		return err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if err := e.startProcess(filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+path, "--leader-elect=false", "--secure-port=0",
		"--controllers=deployment-controller,replicaset-controller,disruption-controller",
		"--concurrent-deployment-syncs=5", "--concurrent-replicaset-syncs=5"); err != nil {
		return err
	}
	return e.startProcess(filepath.Join(assets, "kube-scheduler"),
		"--kubeconfig="+path, "--authentication-kubeconfig="+path, "--authorization-kubeconfig="+path,
		"--leader-elect=false", "--secure-port=0")
}

func (e *Env) startProcess(bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(e.Dir, filepath.Base(bin)+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	e.procs = append(e.procs, cmd)
	return nil
}

// Stop ends every process of the environment.
func (e *Env) Stop() error {
	for _, p := range e.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	err := e.Env.Stop()
	_ = os.RemoveAll(e.Dir)
	return err
}
