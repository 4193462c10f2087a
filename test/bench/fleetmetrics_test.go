package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

func unlimited(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	return cfg
}

// saveProfile writes one of the manager's profiles (heap after a
// collection, goroutine) for go tool pprof.
func saveProfile(profilerAddr, profile, path string) error {
	resp, err := http.Get("http://" + profilerAddr + "/debug/pprof/" + profile + "?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err = io.Copy(out, resp.Body); err != nil {
		return err
	}
	return out.Close()
}

// managerMetrics are what the fleet benchmark reads from the manager's /metrics.
type managerMetrics struct {
	// clusters have a reboot-required gauge: the manager watches their Nodes.
	clusters                  int
	machinesQueued, heapInUse float64
	goroutines                float64
}

func scrape(metricsAddr string) (managerMetrics, error) {
	m := managerMetrics{machinesQueued: -1}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		line := s.Text()
		value := func(v *float64) { _, _ = fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], v) }
		switch {
		case strings.HasPrefix(line, `nodecycle_nodes_reboot_required{cluster="fleet-`):
			m.clusters++
		case strings.HasPrefix(line, "workqueue_depth{") && strings.Contains(line, `name="nodecycle-machine"`):
			value(&m.machinesQueued)
		case strings.HasPrefix(line, "go_memstats_heap_inuse_bytes "):
			value(&m.heapInUse)
		case strings.HasPrefix(line, "go_goroutines "):
			value(&m.goroutines)
		}
	}
	return m, s.Err()
}

// settled: the manager watches the Nodes of want clusters and its Machine
// queue is empty.
func settled(metricsAddr string, want int) error {
	m, err := scrape(metricsAddr)
	if err != nil {
		return err
	}
	if m.clusters != want || m.machinesQueued != 0 {
		return fmt.Errorf("watching the Nodes of %d of %d clusters, %v Machines queued", m.clusters, want, m.machinesQueued)
	}
	return nil
}

func setRebootRequired(ctx context.Context, c client.Client, name string, status corev1.ConditionStatus) error {
	node := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return err
	}
	now := metav1.Now()
	for k := range node.Status.Conditions {
		if cond := &node.Status.Conditions[k]; cond.Type == v1alpha1.ConditionRebootRequired {
			cond.Status, cond.LastHeartbeatTime, cond.LastTransitionTime = status, now, now
		}
	}
	return c.Status().Update(ctx, node)
}
