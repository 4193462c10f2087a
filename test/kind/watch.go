package kind

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/nodecycle/nodecycle/internal/nodes"
)

// NodeWatch records, from a watch on Nodes, what happened to each node and
// whether two nodes were ever unschedulable at the same instant.
type NodeWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	cordons   map[string][]time.Time
	uncordons map[string][]time.Time
	bootIDs   map[string][]string
	notReady  map[string][]time.Time
	ready     map[string][]time.Time
	unsched   map[string]bool
	overlaps  []string
}

// WatchNodes starts recording from the nodes' current state.
func (c *Cluster) WatchNodes(ctx context.Context) (*NodeWatch, error) {
	list, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	w, err := c.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	nw := &NodeWatch{cancel: cancel, done: make(chan struct{}),
		cordons: map[string][]time.Time{}, uncordons: map[string][]time.Time{}, bootIDs: map[string][]string{},
		notReady: map[string][]time.Time{}, ready: map[string][]time.Time{}, unsched: map[string]bool{}}
	for i := range list.Items {
		n := &list.Items[i]
		nw.unsched[n.Name] = n.Spec.Unschedulable
		nw.bootIDs[n.Name] = []string{n.Status.NodeInfo.BootID}
	}
	go func() {
		defer close(nw.done)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				if n, isNode := ev.Object.(*corev1.Node); isNode && ev.Type == watch.Modified {
					nw.observe(n, time.Now())
				}
			}
		}
	}()
	return nw, nil
}

func (nw *NodeWatch) observe(n *corev1.Node, now time.Time) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	was := nw.unsched[n.Name]
	switch {
	case n.Spec.Unschedulable && !was:
		nw.cordons[n.Name] = append(nw.cordons[n.Name], now)
	case !n.Spec.Unschedulable && was:
		nw.uncordons[n.Name] = append(nw.uncordons[n.Name], now)
	}
	nw.unsched[n.Name] = n.Spec.Unschedulable
	var down []string
	for name, u := range nw.unsched {
		if u {
			down = append(down, name)
		}
	}
	if len(down) > 1 {
		sort.Strings(down)
		nw.overlaps = append(nw.overlaps, fmt.Sprintf("%s unschedulable together at %s", strings.Join(down, ", "), now.Format(time.RFC3339Nano)))
	}
	ids := nw.bootIDs[n.Name]
	if id := n.Status.NodeInfo.BootID; id != "" && (len(ids) == 0 || ids[len(ids)-1] != id) {
		nw.bootIDs[n.Name] = append(ids, id)
	}
	ready := nodes.IsReady(n)
	switch r, nr := nw.ready[n.Name], nw.notReady[n.Name]; {
	case !ready && (len(nr) == 0 || len(r) > 0 && r[len(r)-1].After(nr[len(nr)-1])):
		nw.notReady[n.Name] = append(nr, now)
	case ready && len(nr) > 0 && (len(r) == 0 || r[len(r)-1].Before(nr[len(nr)-1])):
		nw.ready[n.Name] = append(r, now)
	}
}

// Stop ends the watch.
func (nw *NodeWatch) Stop() {
	nw.cancel()
	<-nw.done
}

// Overlaps lists every instant two nodes or more were unschedulable.
func (nw *NodeWatch) Overlaps() []string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return append([]string(nil), nw.overlaps...)
}

// Cordons is how often node became unschedulable; Uncordons, schedulable.
func (nw *NodeWatch) Cordons(node string) []time.Time { return nw.times(nw.cordons, node) }

// Uncordons is when node became schedulable again.
func (nw *NodeWatch) Uncordons(node string) []time.Time { return nw.times(nw.uncordons, node) }

// NotReady is when node stopped being Ready; Ready, when it was again.
func (nw *NodeWatch) NotReady(node string) []time.Time { return nw.times(nw.notReady, node) }

// Ready is when node became Ready again after being NotReady.
func (nw *NodeWatch) Ready(node string) []time.Time { return nw.times(nw.ready, node) }

func (nw *NodeWatch) times(m map[string][]time.Time, node string) []time.Time {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return append([]time.Time(nil), m[node]...)
}

// BootIDs are the boot IDs node reported, the one at the start first.
func (nw *NodeWatch) BootIDs(node string) []string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return append([]string(nil), nw.bootIDs[node]...)
}
