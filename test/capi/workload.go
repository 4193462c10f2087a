package capi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/test/kind"
)

// Workload is a workload cluster of CAPD Machines: one control plane
// (KubeadmControlPlane) and a MachineDeployment of workers.
// Its kind.Cluster is the workload cluster's side (its node containers
// are CAPD's); NodeCycles are in the management cluster, in Namespace.
type Workload struct {
	*kind.Cluster
	Namespace string
}

// WorkloadSpec says what CreateWorkload makes.
type WorkloadSpec struct {
	Name string
	// Workers is the MachineDeployment's replicas.
	Workers int
	// Strategy is the MachineDeployment's nodecycle.io/strategy.
	Strategy string
}

// workloadTemplate is a Cluster of Cluster API's v1beta2 API on CAPD, with
// the nodecycle kind node image as its Machines' image and CAPD's load
// balancer image built here. Its pods' network is the node image's (each
// node's CNI bridge, routes to the others' ranges in 10.244.0.0/16).
// CAPD turns off kubeadm's preflight checks that assume a machine.
const workloadTemplate = `apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata:
  name: {{name}}
  namespace: {{namespace}}
  labels:
    nodecycle.io/agent: enabled
spec:
  clusterNetwork:
    pods:
      cidrBlocks: [10.244.0.0/16]
    services:
      cidrBlocks: [10.96.0.0/16]
    serviceDomain: cluster.local
  infrastructureRef:
    apiGroup: infrastructure.cluster.x-k8s.io
    kind: DockerCluster
    name: {{name}}
  controlPlaneRef:
    apiGroup: controlplane.cluster.x-k8s.io
    kind: KubeadmControlPlane
    name: {{name}}-control-plane
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: DockerCluster
metadata:
  name: {{name}}
  namespace: {{namespace}}
spec:
  loadBalancer:
    imageRepository: {{lbRepository}}
    imageTag: "{{lbTag}}"
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: DockerMachineTemplate
metadata:
  name: {{name}}-control-plane
  namespace: {{namespace}}
spec:
  template:
    spec:
      customImage: {{nodeImage}}
      preLoadImages: [{{preload}}]
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
kind: KubeadmControlPlane
metadata:
  name: {{name}}-control-plane
  namespace: {{namespace}}
spec:
  replicas: 1
  version: {{version}}
  machineTemplate:
    spec:
      infrastructureRef:
        apiGroup: infrastructure.cluster.x-k8s.io
        kind: DockerMachineTemplate
        name: {{name}}-control-plane
  kubeadmConfigSpec:
    clusterConfiguration:
      apiServer:
        certSANs: [localhost, 127.0.0.1]
    initConfiguration:
      nodeRegistration:
        kubeletExtraArgs:
        - name: eviction-hard
          value: nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%
    joinConfiguration:
      nodeRegistration:
        kubeletExtraArgs:
        - name: eviction-hard
          value: nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: DockerMachineTemplate
metadata:
  name: {{name}}-md-0
  namespace: {{namespace}}
spec:
  template:
    spec:
      customImage: {{nodeImage}}
      preLoadImages: [{{preload}}]
---
{{bootstrapTemplate}}---
apiVersion: cluster.x-k8s.io/v1beta2
kind: MachineDeployment
metadata:
  name: {{name}}-md-0
  namespace: {{namespace}}
  annotations:
    nodecycle.io/strategy: {{strategy}}
spec:
  clusterName: {{name}}
  replicas: {{workers}}
  rollout:
    strategy:
      type: RollingUpdate
      rollingUpdate:
        maxSurge: 0
        maxUnavailable: 1
  selector:
    matchLabels: {}
  template:
    spec:
      clusterName: {{name}}
      version: {{version}}
      bootstrap:
        configRef:
          apiGroup: bootstrap.cluster.x-k8s.io
          kind: KubeadmConfigTemplate
          name: {{name}}-md-0
      infrastructureRef:
        apiGroup: infrastructure.cluster.x-k8s.io
        kind: DockerMachineTemplate
        name: {{name}}-md-0
---
` + machineHealthCheck

// bootstrapTemplate is the workers' KubeadmConfigTemplate {{template}},
// with {{files}} (a files line, or nothing).
const bootstrapTemplate = `apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: KubeadmConfigTemplate
metadata:
  name: {{template}}
  namespace: {{namespace}}
spec:
  template:
    spec:{{files}}
      joinConfiguration:
        nodeRegistration:
          kubeletExtraArgs:
          - name: eviction-hard
            value: nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%
`

// BootstrapTemplate is the workers' KubeadmConfigTemplate name with files
// (YAML of KubeadmConfig's files, flow style, or "" for none).
func BootstrapTemplate(name, namespace, files string) string {
	if files != "" {
		files = "\n      files: " + files
	}
	return strings.NewReplacer("{{template}}", name, "{{namespace}}", namespace, "{{files}}", files).Replace(bootstrapTemplate)
}

// LoadBalancerImage is CAPD's load balancer image of make capi-tools.
const LoadBalancerImage = "nodecycle/haproxy:2.6"

// CreateWorkload applies a workload cluster in the default namespace of
// the management cluster and waits until its nodes are Ready and its
// kubeconfig answers.
func (m *Management) CreateWorkload(ctx context.Context, spec WorkloadSpec, timeout time.Duration) (*Workload, error) {
	nodeImage, err := kind.NodeImage()
	if err != nil {
		return nil, err
	}
	version := nodeImage[strings.LastIndex(nodeImage, ":")+1:]
	// CAPD's load balancer image is <imageRepository>/haproxy:<imageTag>.
	lbName, lbTag, _ := strings.Cut(LoadBalancerImage, ":")
	lbRepository := path.Dir(lbName)
	manifest := strings.NewReplacer(
		"{{bootstrapTemplate}}", BootstrapTemplate(spec.Name+"-md-0", "default", ""),
		"{{name}}", spec.Name, "{{namespace}}", "default", "{{version}}", version,
		"{{nodeImage}}", nodeImage, "{{preload}}", m.Image+", "+kind.SampleImage,
		"{{lbRepository}}", lbRepository, "{{lbTag}}", lbTag,
		"{{workers}}", fmt.Sprint(spec.Workers), "{{strategy}}", spec.Strategy,
	).Replace(workloadTemplate)
	file := filepath.Join(m.dir, spec.Name+".yaml")
	if err := os.WriteFile(file, []byte(manifest), 0o644); err != nil {
		return nil, err
	}
	m.workloads = append(m.workloads, spec.Name)
	// Cluster API's webhooks may still be moving to the pod that presents
	// the client certificate: apply again until they answer.
	for attempt := 0; ; attempt++ {
		_, err := m.Kubectl(ctx, "apply", "-f", file)
		if err == nil {
			break
		}
		if attempt == 12 || !strings.Contains(err.Error(), "failed calling webhook") {
			return nil, err
		}
		time.Sleep(10 * time.Second)
	}
	w := &Workload{Cluster: &kind.Cluster{Name: spec.Name, Kubeconfig: filepath.Join(m.dir, spec.Name+".kubeconfig")}, Namespace: "default"}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := w.connect(ctx, m)
		if err == nil {
			var ready int
			if ready, err = w.readyNodes(ctx); err == nil && ready == spec.Workers+1 {
				return w, w.restartable(ctx)
			}
			if err == nil {
				err = fmt.Errorf("%d of %d nodes Ready", ready, spec.Workers+1)
			}
		}
		select {
		case <-ctx.Done():
			status, _ := m.Clusterctl(context.Background(), "describe", "cluster", spec.Name, "--show-conditions", "all")
			return nil, fmt.Errorf("workload cluster %s not ready in %s: %w\n%s", spec.Name, timeout, err, status)
		case <-time.After(5 * time.Second):
		}
	}
}

// connect reads the workload cluster's kubeconfig Secret and makes its
// clients.
func (w *Workload) connect(ctx context.Context, m *Management) error {
	if w.Client != nil {
		return nil
	}
	var secret corev1.Secret
	if err := m.Client.Get(ctx, types.NamespacedName{Namespace: w.Namespace, Name: w.Name + "-kubeconfig"}, &secret); err != nil {
		return err
	}
	if err := os.WriteFile(w.Kubeconfig, secret.Data["value"], 0o600); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", w.Kubeconfig)
	if err != nil {
		return err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	w.Config, w.Client, w.Clientset = cfg, c, cs
	return nil
}

// restartable records the nodes' names and lets their containers start
// again after their systemd rebooted them (CAPD's policy, on-failure:1,
// would do it only once), as kind.Create does.
func (w *Workload) restartable(ctx context.Context) error {
	var nodes corev1.NodeList
	if err := w.Client.List(ctx, &nodes); err != nil {
		return err
	}
	w.Workers = nil
	for _, n := range nodes.Items {
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; cp {
			w.ControlPlane = n.Name
		} else {
			w.Workers = append(w.Workers, n.Name)
		}
		if out, err := exec.CommandContext(ctx, "docker", "update", "--restart=unless-stopped", n.Name).CombinedOutput(); err != nil {
			return fmt.Errorf("docker update %s: %w\n%s", n.Name, err, out)
		}
	}
	sort.Strings(w.Workers)
	return nil
}

// readyNodes counts the workload cluster's Ready nodes.
func (w *Workload) readyNodes(ctx context.Context) (int, error) {
	var nodes corev1.NodeList
	if err := w.Client.List(ctx, &nodes); err != nil {
		return 0, err
	}
	ready := 0
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return ready, nil
}

// machineHealthCheck remediates the workers whose node is not Ready for a
// minute: what nodecycle's skip-remediation must hold off during a reboot.
const machineHealthCheck = `apiVersion: cluster.x-k8s.io/v1beta2
kind: MachineHealthCheck
metadata:
  name: {{name}}-md-0
  namespace: {{namespace}}
spec:
  clusterName: {{name}}
  selector:
    matchLabels:
      cluster.x-k8s.io/deployment-name: {{name}}-md-0
  checks:
    nodeStartupTimeoutSeconds: 600
    unhealthyNodeConditions:
    - type: Ready
      status: Unknown
      timeoutSeconds: 60
    - type: Ready
      status: "False"
      timeoutSeconds: 60
`
