// Package kind runs nodecycle on kind clusters of real kubelets: the node
// image of make e2e-image, kind through hack/kind/kind.sh (which works on
// engines that refuse privileged containers), nodecycle installed with its
// Helm chart from the image of make image, and node containers that come
// back after their systemd rebooted them, with a new boot ID.
package kind

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

// Cluster is a kind cluster whose node containers restart when their node
// reboots.
type Cluster struct {
	Name       string
	Kubeconfig string
	Config     *rest.Config
	Client     client.Client
	Clientset  kubernetes.Interface
	// Workers are the worker nodes' names (their containers' names too).
	Workers []string
	// ControlPlane is the control-plane node's name.
	ControlPlane string

	dir string
	log io.Writer
}

// NodeImage is the kind node image: KIND_NODE_IMAGE, as make sets it.
func NodeImage() (string, error) {
	if img := os.Getenv("KIND_NODE_IMAGE"); img != "" {
		return img, nil
	}
	return "", fmt.Errorf("KIND_NODE_IMAGE is not set: run through make e2e or make kind, which build the node image (make e2e-image)")
}

// kindCommand runs hack/kind/kind.sh with args.
func kindCommand(ctx context.Context, log io.Writer, args ...string) error {
	img, err := NodeImage()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(localkube.RepoRoot(), "hack", "kind", "kind.sh"), args...)
	cmd.Env = append(os.Environ(), "KIND_PROBE_IMAGE="+img)
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, log)
	cmd.Stderr = io.MultiWriter(&out, log)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kind %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 40))
	}
	return nil
}

// Mount is a host path bound into every node of a cluster (kind's
// extraMounts).
type Mount struct {
	HostPath, ContainerPath string
}

// Create makes a kind cluster of one control plane and workers workers,
// with mounts in every node. A cluster of that name left over from an
// earlier run is deleted first.
func Create(ctx context.Context, name string, workers int, log io.Writer, mounts ...Mount) (*Cluster, error) {
	img, err := NodeImage()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "nodecycle-kind-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Name: name, Kubeconfig: filepath.Join(dir, "kubeconfig"), dir: dir, log: log,
		ControlPlane: name + "-control-plane"}
	node := func(role string) string {
		n := "- role: " + role + "\n"
		if len(mounts) > 0 {
			n += "  extraMounts:\n"
		}
		for _, m := range mounts {
			n += fmt.Sprintf("  - hostPath: %q\n    containerPath: %q\n", m.HostPath, m.ContainerPath)
		}
		return n
	}
	config := "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n" + node("control-plane")
	for i := range workers {
		config += node("worker")
		c.Workers = append(c.Workers, workerName(name, i))
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte(config), 0o644); err != nil {
		return nil, err
	}
	_ = kindCommand(ctx, io.Discard, "delete", "cluster", "--name", name)
	if err := kindCommand(ctx, log, "create", "cluster", "--name", name, "--image", img,
		"--config", filepath.Join(dir, "cluster.yaml"), "--kubeconfig", c.Kubeconfig, "--wait", "3m"); err != nil {
		c.Delete()
		return nil, err
	}
	// A node reboots by its systemd ending the container: the engine starts
	// it again (kind's own policy, on-failure:1, would do it only once).
	for _, n := range append([]string{c.ControlPlane}, c.Workers...) {
		if _, err := docker(ctx, "update", "--restart=unless-stopped", n); err != nil {
			c.Delete()
			return nil, err
		}
	}
	if err := c.connect(); err != nil {
		c.Delete()
		return nil, err
	}
	return c, nil
}

// workerName is kind's name for the i-th worker (from 0).
func workerName(cluster string, i int) string {
	if i == 0 {
		return cluster + "-worker"
	}
	return fmt.Sprintf("%s-worker%d", cluster, i+1)
}

func (c *Cluster) connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100
	c.Config = cfg
	if c.Client, err = client.NewWithWatch(cfg, client.Options{Scheme: controllers.Scheme()}); err != nil {
		return err
	}
	c.Clientset, err = kubernetes.NewForConfig(cfg)
	return err
}

// Delete removes the cluster and its files.
func (c *Cluster) Delete() {
	if err := kindCommand(context.Background(), io.Discard, "delete", "cluster", "--name", c.Name); err != nil {
		fmt.Fprintf(c.log, "deleting kind cluster %s: %v\n", c.Name, err)
	}
	_ = os.RemoveAll(c.dir)
}

// Load puts local images into every node's containerd.
func (c *Cluster) Load(ctx context.Context, images ...string) error {
	return kindCommand(ctx, c.log, append([]string{"load", "docker-image", "--name", c.Name}, images...)...)
}

// Exec runs a command in a node's container.
func (c *Cluster) Exec(ctx context.Context, node string, args ...string) (string, error) {
	return docker(ctx, append([]string{"exec", node}, args...)...)
}

// Helm runs helm (built by make tools) on the cluster.
func (c *Cluster) Helm(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(localkube.Assets(), "helm"), append(args, "--kubeconfig", c.Kubeconfig)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Kubectl runs kubectl (built by make tools) on the cluster.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(localkube.Assets(), "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// docker runs the docker CLI and returns its trimmed output.
func docker(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
