package sandbox

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/internal/agent"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

// startNodeSimulation runs kube-controller-manager (with the node lifecycle
// controller), kube-scheduler and kwok.
func startNodeSimulation(env *localkube.Env, kubeconfig string, controllers []string) error {
	if err := env.StartControllers(append(slices.Clone(controllers), "node-lifecycle-controller")...); err != nil {
		return err
	}
	stagesPath := filepath.Join(env.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(stagesPath, stages, 0o600); err != nil {
		return err
	}
	return env.StartProcess("kwok", "--kubeconfig="+kubeconfig, "--manage-all-nodes=true",
		"--config="+stagesPath, "--server-address=127.0.0.1:0", "--node-lease-duration-seconds=40")
}

// writePointer records the running sandbox's directory, so that
// `sandbox require-reboot` finds the sentinels.
func writePointer(dir string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(home, ".cache", "nodecycle", "sandbox-current")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, os.WriteFile(p, []byte(dir+"\n"), 0o644)
}

// SentinelPath is the sentinel file of node in the running sandbox.
func SentinelPath(node string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(home, ".cache", "nodecycle", "sandbox-current"))
	if err != nil {
		return "", errors.New("no sandbox is running (start one with 'make sandbox')")
	}
	dir := filepath.Join(strings.TrimSpace(string(b)), "nodes", node)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("the running sandbox has no node %q", node)
	}
	return filepath.Join(dir, "reboot-required"), nil
}

func createNodes(ctx context.Context, c client.Client, names []string) error {
	for _, name := range names {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, "type": "kwok"}}}
		if strings.HasPrefix(name, "control-plane") {
			n.Labels["node-role.kubernetes.io/control-plane"] = ""
			n.Spec.Taints = []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
		}
		if err := c.Create(ctx, n); err != nil {
			return fmt.Errorf("creating node %s: %w", name, err)
		}
	}
	// kwok initialises each node (Ready, capacity); the boot ID is then set
	// once, as a kubelet reports it.
	for _, name := range names {
		if err := waitNode(ctx, c, name, func(n *corev1.Node) bool { return nodes.IsReady(n) }); err != nil {
			return fmt.Errorf("node %s did not become Ready (is kwok running? see its log): %w", name, err)
		}
		if err := setBootID(ctx, c, name); err != nil {
			return err
		}
	}
	return nil
}

func setBootID(ctx context.Context, c client.Client, name string) error {
	id := uuid.NewString()
	patch := fmt.Sprintf(`{"status":{"nodeInfo":{"bootID":%q}}}`, id)
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Status().Patch(ctx, n, client.RawPatch(types.StrategicMergePatchType, []byte(patch))); err != nil {
			return false, nil
		}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
			return false, nil
		}
		return n.Status.NodeInfo.BootID == id, nil
	})
}

func waitNode(ctx context.Context, c client.Client, name string, ok func(*corev1.Node) bool) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n := &corev1.Node{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return ok(n), nil
	})
}

// startAgent runs a real agent for node; its reboot command is a simulated
// reboot of the kwok node.
func startAgent(ctx context.Context, env *localkube.Env, cs kubernetes.Interface, node string, o Options) (string, error) {
	dir := filepath.Join(env.Dir, "nodes", node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sentinel := filepath.Join(dir, "reboot-required")
	a := &agent.Agent{
		NodeName:      node,
		Client:        cs,
		Checker:       agent.FileChecker{Path: sentinel},
		Rebooter:      &kwokReboot{c: env.Client, node: node, sentinel: sentinel, downTime: o.DownTime},
		SentinelFile:  sentinel,
		Namespace:     Namespace,
		RecheckPeriod: time.Minute,
		Log:           o.Log.WithName("agent"),
	}
	ready := a.Ready()
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	select {
	case <-ready:
		return sentinel, nil
	case err := <-errc:
		return "", fmt.Errorf("agent on %s: %w", node, err)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// kwokReboot reboots a kwok node as a real one would look from the API:
// Ready=False while it is down, then a new boot ID and Ready=True. Like
// `systemctl reboot` it returns at once. A reboot clears /var/run, so the
// sentinel goes too.
type kwokReboot struct {
	c        client.Client
	node     string
	sentinel string
	downTime time.Duration
}

func (k *kwokReboot) Reboot(ctx context.Context) error {
	go func() {
		_ = os.Remove(k.sentinel)
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.node}}
		down := nodes.AnnotationsPatch(map[string]*string{annotationPowerOff: ptr.To("true")})
		if err := k.c.Patch(ctx, n, client.RawPatch(types.MergePatchType, down)); err != nil {
			return
		}
		notReady := nodes.ConditionPatch(nil, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse,
			Reason: "KubeletNotReady", Message: "node is rebooting"}, time.Now())
		_ = k.c.Status().Patch(ctx, n, client.RawPatch(types.StrategicMergePatchType, notReady))
		select {
		case <-ctx.Done():
			return
		case <-time.After(k.downTime):
		}
		_ = setBootID(ctx, k.c, k.node)
		up := nodes.AnnotationsPatch(map[string]*string{annotationPowerOff: nil})
		_ = k.c.Patch(ctx, n, client.RawPatch(types.MergePatchType, up))
	}()
	return nil
}
