package capi

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodecycle/nodecycle/test/framework/dockerproxy"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/kind"
)

// Management is a kind management cluster with Cluster API's providers,
// cert-manager and nodecycle installed by clusterctl.
type Management struct {
	*kind.Cluster
	// Image is the nodecycle image (manager and agent) of this run.
	Image string
	// Version is nodecycle's release version of this run.
	Version string

	dir       string
	config    string   // clusterctl's configuration
	workloads []string // the workload clusters' names
	proxy     *dockerproxy.Proxy
	log       io.Writer
}

// Clusterctl is the clusterctl binary of make capi-tools: CLUSTERCTL, as
// make sets it.
func Clusterctl() (string, error) {
	if c := os.Getenv("CLUSTERCTL"); c != "" {
		return c, nil
	}
	return "", fmt.Errorf("CLUSTERCTL is not set: run through make e2e-capi, which builds clusterctl and Cluster API's providers (make capi-tools)")
}

// Up builds the nodecycle image, starts the Docker API proxy CAPD talks
// through, creates the kind management cluster name with the proxy's
// socket as its nodes' /var/run/docker.sock, loads the images, writes
// clusterctl's local repository and runs clusterctl init with every
// provider, nodecycle as an addon.
func Up(ctx context.Context, name string, out io.Writer) (_ *Management, err error) {
	step := func(s string) { fmt.Fprintf(out, "==> %s %s\n", time.Now().Format("15:04:05"), s) }
	if _, err = Clusterctl(); err != nil {
		return nil, err
	}
	m := &Management{Version: fmt.Sprintf("v0.1.%d", time.Now().Unix()), log: out}
	if m.dir, err = os.MkdirTemp("", "nodecycle-capi-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.Delete()
		}
	}()

	step("building the nodecycle image (hack/image.sh, as make image) and the sample image")
	if m.Image, err = kind.BuildImages(ctx, m.Version); err != nil {
		return nil, err
	}
	step("starting the Docker API proxy for CAPD")
	socket := filepath.Join(m.dir, "docker.sock")
	if m.proxy, err = dockerproxy.Start(socket, "/var/run/docker.sock"); err != nil {
		return nil, err
	}
	// CAPD runs as a user that is not root.
	if err = os.Chmod(socket, 0o666); err != nil {
		return nil, err
	}
	step("creating the kind management cluster " + name)
	if m.Cluster, err = kind.Create(ctx, name, 0, out, kind.Mount{HostPath: socket, ContainerPath: "/var/run/docker.sock"}); err != nil {
		return nil, err
	}
	step("loading the providers', cert-manager's and nodecycle's images")
	if err = m.Load(ctx, append(ProviderImages(), m.Image)...); err != nil {
		return nil, err
	}
	step("writing clusterctl's local repository")
	if m.config, err = Repository(ctx, filepath.Join(m.dir, "repository"), m.Version, m.Image); err != nil {
		return nil, err
	}
	step("clusterctl init")
	if _, err := m.Clusterctl(ctx, "init",
		"--core", "cluster-api:"+CAPIVersion,
		"--bootstrap", "kubeadm:"+CAPIVersion,
		"--control-plane", "kubeadm:"+CAPIVersion,
		"--infrastructure", "docker:"+CAPIVersion,
		"--addon", "nodecycle:"+m.Version,
		"--wait-providers", "--wait-provider-timeout", "600"); err != nil {
		return nil, err
	}
	// docs/clusterapi.md, "Cluster API in-place updates": the extension's
	// registration, then Cluster API's client certificate.
	step("registering nodecycle as Cluster API's in-place update extension")
	registration := filepath.Join(localkube.RepoRoot(), "config", "in-place-updates", "registration")
	if _, err := m.Kubectl(ctx, "apply", "-k", registration); err != nil {
		return nil, err
	}
	if _, err := m.Kubectl(ctx, "-n", "capi-system", "patch", "deployment", "capi-controller-manager", "--type=json",
		"--patch-file", filepath.Join(registration, "capi-client-certificate.yaml")); err != nil {
		return nil, err
	}
	if _, err := m.Kubectl(ctx, "-n", "capi-system", "rollout", "status", "deployment/capi-controller-manager", "--timeout=5m"); err != nil {
		return nil, err
	}
	step("management cluster ready")
	return m, nil
}

// Clusterctl runs clusterctl with the run's configuration on the
// management cluster, as a user would: Cluster API's in-place updates and
// Runtime SDK on, no version check (there is no internet).
func (m *Management) Clusterctl(ctx context.Context, args ...string) (string, error) {
	bin, err := Clusterctl()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, append(args, "--config", m.config, "--kubeconfig", m.Kubeconfig)...)
	cmd.Env = append(os.Environ(),
		"CLUSTERCTL_DISABLE_VERSIONCHECK=true",
		"XDG_CONFIG_HOME="+filepath.Join(m.dir, "config"),
		"EXP_IN_PLACE_UPDATES=true",
		"EXP_RUNTIME_SDK=true",
	)
	var buf strings.Builder
	cmd.Stdout = io.MultiWriter(&buf, m.log)
	cmd.Stderr = io.MultiWriter(&buf, m.log)
	if err := cmd.Run(); err != nil {
		return buf.String(), fmt.Errorf("clusterctl %s: %w", strings.Join(args, " "), err)
	}
	return buf.String(), nil
}

// Delete removes the workload clusters' containers, the management
// cluster, the proxy and the run's files.
func (m *Management) Delete() {
	for _, w := range m.workloads {
		ids, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=io.x-k8s.kind.cluster="+w).Output()
		if f := strings.Fields(string(ids)); len(f) > 0 {
			_ = exec.Command("docker", append([]string{"rm", "-f", "-v"}, f...)...).Run()
		}
	}
	if m.Cluster != nil {
		m.Cluster.Delete()
	}
	if m.proxy != nil {
		_ = m.proxy.Close()
	}
	_ = os.RemoveAll(m.dir)
}
