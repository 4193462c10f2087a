package kind

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// SentinelPath is the agent's sentinel file on a node (the chart mounts the
// node's /var/run into the agent).
const SentinelPath = "/var/run/reboot-required"

// Container is what the engine says about a node's container.
type Container struct {
	// Restarts counts the engine's restarts of the container: each is a
	// reboot of the node.
	Restarts  int
	StartedAt string
	IP        string
}

// Container inspects node's container.
func (c *Cluster) Container(ctx context.Context, node string) (Container, error) {
	out, err := docker(ctx, "inspect", "--format",
		"{{.RestartCount}} {{.State.StartedAt}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", node)
	if err != nil {
		return Container{}, err
	}
	f := strings.Fields(out)
	if len(f) != 3 {
		return Container{}, fmt.Errorf("docker inspect %s: unexpected %q", node, out)
	}
	restarts, err := strconv.Atoi(f[0])
	return Container{Restarts: restarts, StartedAt: f[1], IP: f[2]}, err
}

// RequireReboot makes node need a reboot as a package update would: the
// sentinel file appears on the node.
func (c *Cluster) RequireReboot(ctx context.Context, node string) error {
	_, err := c.Exec(ctx, node, "touch", SentinelPath)
	return err
}

// ClearSentinel removes the sentinel file from node.
func (c *Cluster) ClearSentinel(ctx context.Context, node string) error {
	_, err := c.Exec(ctx, node, "rm", "-f", SentinelPath)
	return err
}

// WaitCycle waits until the NodeCycle of node created at or after since has
// finished, and returns it.
func (c *Cluster) WaitCycle(ctx context.Context, node string, since time.Time, timeout time.Duration) (*v1alpha1.NodeCycle, error) {
	var found *v1alpha1.NodeCycle
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var list v1alpha1.NodeCycleList
		if err := c.Client.List(ctx, &list, client.InNamespace(Namespace)); err != nil {
			return false, nil
		}
		for i := range list.Items {
			nc := &list.Items[i]
			if nc.Spec.NodeName == node && !nc.CreationTimestamp.Time.Before(since.Truncate(time.Second)) && nc.Status.Phase.Terminal() {
				found = nc
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the NodeCycle of %s: %w", node, err)
	}
	return found, nil
}

// PodsOn are the UIDs of the pods of namespace on node.
func (c *Cluster) PodsOn(ctx context.Context, namespace, node string) (map[string]string, error) {
	var list corev1.PodList
	if err := c.Client.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range list.Items {
		if p.Spec.NodeName == node && p.DeletionTimestamp == nil {
			out[string(p.UID)] = p.Name
		}
	}
	return out, nil
}

// WaitAvailable waits until the sample Deployment has all its replicas
// available again.
func (c *Cluster) WaitAvailable(ctx context.Context) error {
	_, err := c.Kubectl(ctx, "-n", SampleNamespace, "wait", "deployment/"+SampleName,
		"--for=jsonpath={.status.availableReplicas}="+strconv.Itoa(SampleReplicas), "--timeout=3m")
	return err
}
