package kind

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

// Namespaces and names of what Install and DeploySample create.
const (
	Namespace       = "nodecycle-system"
	SampleNamespace = "demo"
	SampleName      = "sample-deployment"
	SampleReplicas  = 4
	// SampleImage serves HTTP with busybox's httpd (the image's busybox,
	// Debian's busybox-static): a tiny static server stands in for the
	// nginx of the original scenario, because all that matters is a pod
	// that starts, serves and is Ready, and a 1 MiB image loads into every
	// node in a second.
	SampleImage = "nodecycle-e2e/sample:1"
)

// BuildImages builds the nodecycle image as make image does (hack/image.sh)
// and the sample workload's image, and returns the nodecycle image's name.
func BuildImages(ctx context.Context, version string) (string, error) {
	image := "ghcr.io/nodecycle/nodecycle:" + version
	root := localkube.RepoRoot()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "image.sh"), image, version)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("hack/image.sh: %w\n%s", err, out)
	}
	dir, err := os.MkdirTemp("", "nodecycle-sample-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	busybox, err := os.ReadFile(filepath.Join(root, "out", "image", "rootfs", "bin", "busybox"))
	if err != nil {
		return "", err
	}
	files := map[string]string{
		"busybox":          string(busybox),
		"www/index.html":   "sample-deployment\n",
		"Dockerfile":       "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nUSER 65532:65532\nENTRYPOINT [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
		"www/healthz.html": "ok\n",
	}
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			return "", err
		}
	}
	build := exec.CommandContext(ctx, "docker", "build", "--quiet", "-t", SampleImage, dir)
	build.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", SampleImage, err, out)
	}
	return image, nil
}

// Install installs nodecycle with its Helm chart (charts/nodecycle) from
// image, with extra manager flags, and waits until the manager and every
// agent are ready. The manager runs on the control plane, where an operator
// would put it (a manager on a worker it reboots goes down with it), by
// the chart's values, as an operator would put it there.
func (c *Cluster) Install(ctx context.Context, image string, managerFlags map[string]string) error {
	repo, tag, _ := strings.Cut(image, ":")
	values, err := os.CreateTemp("", "nodecycle-values-*.yaml")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(values.Name()) }()
	if _, err := values.WriteString(onControlPlane); err != nil {
		return err
	}
	if err := values.Close(); err != nil {
		return err
	}
	args := []string{"upgrade", "--install", "nodecycle", filepath.Join(localkube.RepoRoot(), "charts", "nodecycle"),
		"--namespace", Namespace, "--create-namespace", "--values", values.Name(),
		"--set", "image.repository=" + repo, "--set", "image.tag=" + tag}
	for k, v := range managerFlags {
		args = append(args, "--set-string", "manager.flags."+k+"="+v)
	}
	if _, err := c.Helm(ctx, args...); err != nil {
		return err
	}
	for _, what := range []string{"deployment/nodecycle-manager", "daemonset/nodecycle-agent"} {
		if _, err := c.Kubectl(ctx, "-n", Namespace, "rollout", "status", what, "--timeout", "5m"); err != nil {
			return err
		}
	}
	return nil
}

// onControlPlane are the chart values that run the manager on the control
// plane nodes.
const onControlPlane = `manager:
  nodeSelector:
    node-role.kubernetes.io/control-plane: ""
  tolerations:
    - key: node-role.kubernetes.io/control-plane
      operator: Exists
      effect: NoSchedule
`

// DeploySample runs the sample workload on the workers: 4 replicas of
// SampleImage and a PodDisruptionBudget of maxUnavailable 1, and waits
// until all are available.
func (c *Cluster) DeploySample(ctx context.Context) error {
	labels := map[string]string{"app": SampleName}
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SampleNamespace}}); err != nil {
		return err
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: SampleName, Namespace: SampleNamespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](SampleReplicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					Containers: []corev1.Container{{
						Name: "web", Image: SampleImage, ImagePullPolicy: corev1.PullNever,
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz.html", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	if err := c.Client.Create(ctx, d); err != nil {
		return err
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: SampleName, Namespace: SampleNamespace},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: labels},
		},
	}
	if err := c.Client.Create(ctx, pdb); err != nil {
		return err
	}
	_, err := c.Kubectl(ctx, "-n", SampleNamespace, "rollout", "status", "deployment/"+SampleName, "--timeout", "3m")
	return err
}

// Up builds the images, creates the kind cluster name (1 control plane, 2
// workers), loads the images, installs nodecycle with managerFlags and
// deploys the sample workload, printing each step to out.
func Up(ctx context.Context, name string, managerFlags map[string]string, out io.Writer) (*Cluster, error) {
	start := time.Now()
	step := func(what string) { fmt.Fprintf(out, "[%6.1fs] %s\n", time.Since(start).Seconds(), what) }
	step("building the nodecycle image (hack/image.sh, as make image) and the sample image")
	image, err := BuildImages(ctx, fmt.Sprintf("v0.0.0-kind.%d", time.Now().Unix()))
	if err != nil {
		return nil, err
	}
	step("creating kind cluster " + name + " (1 control plane, 2 workers)")
	c, err := Create(ctx, name, 2, out)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Cluster, error) {
		c.Delete()
		return nil, err
	}
	step("loading the images into the nodes (kind load docker-image)")
	err = c.Load(ctx, image, SampleImage)
	// The nodes have the image now; each run builds its own tag, which the
	// engine need not keep.
	_, _ = docker(ctx, "rmi", image)
	if err != nil {
		return fail(err)
	}
	step("installing nodecycle with its Helm chart")
	if err := c.Install(ctx, image, managerFlags); err != nil {
		return fail(err)
	}
	step("deploying sample-deployment (4 replicas, PodDisruptionBudget maxUnavailable 1)")
	if err := c.DeploySample(ctx); err != nil {
		return fail(err)
	}
	step("ready")
	return c, nil
}
