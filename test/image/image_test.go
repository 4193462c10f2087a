//go:build e2e

// Package image tests the nodecycle image that `make image` builds: its
// metadata, and both commands run from it, as the manifests run them,
// against a real API server.
package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// docker runs the docker CLI and returns its trimmed output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// buildImage builds the image with hack/image.sh, as `make image` does, and
// removes it when the test ends.
func buildImage(t *testing.T, image, version string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(localkube.RepoRoot(), "hack", "image.sh"), image, version)
	cmd.Dir = localkube.RepoRoot()
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("hack/image.sh: %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })
}

func TestImage(t *testing.T) {
	tag := fmt.Sprintf("%d", os.Getpid())
	image, version := "nodecycle-image-test:"+tag, "v0.0.0-test."+tag
	buildImage(t, image, version)

	// Metadata: version label, non-root user, manager entrypoint.
	if got := docker(t, "image", "inspect", "--format", `{{index .Config.Labels "org.opencontainers.image.version"}}`, image); got != version {
		t.Errorf("version label %q, want %q", got, version)
	}
	if got := docker(t, "image", "inspect", "--format", "{{.Config.User}}", image); got != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", got)
	}
	if got := docker(t, "run", "--rm", image, "--version"); got != "nodecycle-manager "+version {
		t.Errorf("manager --version printed %q", got)
	}
	if got := docker(t, "run", "--rm", "--entrypoint", "/usr/local/bin/nodecycle-agent", image, "--version"); got != "nodecycle-agent "+version {
		t.Errorf("agent --version printed %q", got)
	}
	if got := docker(t, "run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "id -u; command -v nsenter"); got != "65532\nnsenter" && got != "65532\n/usr/bin/nsenter" {
		t.Errorf("sh and nsenter: %q", got)
	}
	t.Logf("image size: %s bytes", docker(t, "image", "inspect", "--format", "{{.Size}}", image))

	t.Run("reboot", func(t *testing.T) { testReboot(t, image) })
}

// testReboot runs the manager and an agent from the image (host network,
// the agent as root with the default reboot command) against a real API
// server; the node is simulated, and so is the host's systemctl, which the
// agent's nsenter runs in the container's own mount namespace.
func testReboot(t *testing.T, image string) {
	env, err := localkube.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	kubeconfig, err := env.AdminKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	kc, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err = os.WriteFile(filepath.Join(host, "kubeconfig"), kc, 0o644); err != nil {
		t.Fatal(err)
	}
	systemctl := filepath.Join(host, "systemctl")
	if err = os.WriteFile(systemctl, []byte("#!/bin/sh\necho \"$@\" >> /host/systemctl.log\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err = os.Chmod(host, 0o777); err != nil {
		t.Fatal(err)
	}

	const node = "image-node"
	if _, err = env.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "nodecycle-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err = sim.CreateNode(ctx, env.Clientset, node, map[string]string{"image-test": "true"}); err != nil {
		t.Fatal(err)
	}
	sentinel := filepath.Join(host, "reboot-required")
	kubelet := &sim.Kubelet{Client: env.Clientset, Selector: labels.SelectorFromSet(labels.Set{"image-test": "true"}), DownTime: time.Second,
		OnReboot: func(string) { _ = os.Remove(sentinel) }} // /var/run is a tmpfs
	go kubelet.Run(ctx)

	run := func(name string, args ...string) {
		t.Helper()
		cname := fmt.Sprintf("nodecycle-image-test-%s-%d", name, os.Getpid())
		docker(t, append([]string{"run", "-d", "--name", cname, "--network", "host", "-v", host + ":/host"}, args...)...)
		t.Cleanup(func() {
			if t.Failed() {
				logs, _ := exec.Command("docker", "logs", cname).CombinedOutput()
				t.Logf("%s logs:\n%s", name, logs)
			}
			_ = exec.Command("docker", "rm", "-f", cname).Run()
		})
	}
	run("agent", "--user", "0", "--cap-add", "SYS_ADMIN", "-v", systemctl+":/usr/bin/systemctl:ro",
		"--entrypoint", "/usr/local/bin/nodecycle-agent", image,
		"--kubeconfig=/host/kubeconfig", "--node-name="+node, "--sentinel-file=/host/reboot-required",
		"--metrics-bind-address=0", "--health-probe-bind-address=0")
	run("manager", image,
		"--kubeconfig=/host/kubeconfig", "--leader-elect=false", "--metrics-bind-address=0",
		"--health-probe-bind-address=0", "--agent-pod-selector=", "--node-selector=image-test=true")

	bootBefore := nodeBootID(ctx, t, env.Client, node)
	if err = os.WriteFile(sentinel, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var cycle v1alpha1.NodeCycle
	for {
		var list v1alpha1.NodeCycleList
		if err = env.Client.List(ctx, &list, client.InNamespace("nodecycle-system")); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 1 && list.Items[0].Status.Phase == v1alpha1.PhaseSucceeded {
			cycle = list.Items[0]
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no NodeCycle succeeded: %+v", list.Items)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if cycle.Status.BootIDBefore != bootBefore || cycle.Status.BootIDAfter == bootBefore {
		t.Errorf("boot IDs %q -> %q, the node's was %q", cycle.Status.BootIDBefore, cycle.Status.BootIDAfter, bootBefore)
	}
	if kubelet.Reboots(node) != 1 {
		t.Errorf("%d reboots, want 1", kubelet.Reboots(node))
	}
	log, err := os.ReadFile(filepath.Join(host, "systemctl.log"))
	if err != nil || !bytes.Equal(log, []byte("reboot\n")) {
		t.Errorf("the agent's default reboot command did not run systemctl reboot once: %q, %v", log, err)
	}
	var n corev1.Node
	if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, &n); err != nil {
		t.Fatal(err)
	}
	if n.Spec.Unschedulable {
		t.Error("node still cordoned")
	}
}

func nodeBootID(ctx context.Context, t *testing.T, c client.Client, name string) string {
	t.Helper()
	var n corev1.Node
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &n); err != nil {
		t.Fatal(err)
	}
	return n.Status.NodeInfo.BootID
}
