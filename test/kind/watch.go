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

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// What a NodeWatch marks on a node.
const (
	MarkCordoned       = "cordoned"
	MarkUncordoned     = "uncordoned"
	MarkNotReady       = "NotReady"
	MarkReady          = "Ready"
	MarkNewBootID      = "new boot ID"
	MarkRebootRequired = "RebootRequired"
	MarkRequested      = "reboot requested"
	MarkAcknowledged   = "reboot acknowledged"
	MarkJoined         = "joined"
)

// NodeWatch records, from a watch on Nodes, when each node changed in the
// ways nodecycle cares about, and whether two nodes were ever unschedulable
// at the same instant.
type NodeWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	last     map[string]*corev1.Node
	marks    map[string]map[string][]time.Time
	bootIDs  map[string][]string
	overlaps []string
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
		last: map[string]*corev1.Node{}, marks: map[string]map[string][]time.Time{}, bootIDs: map[string][]string{}}
	for i := range list.Items {
		n := &list.Items[i]
		nw.last[n.Name] = n
		nw.bootIDs[n.Name] = []string{n.Status.NodeInfo.BootID}
	}
	go func() {
		defer close(nw.done)
		sim.Follow(ctx, w, func(ev watch.Event) {
			if n, isNode := ev.Object.(*corev1.Node); isNode && (ev.Type == watch.Modified || ev.Type == watch.Added) {
				nw.observe(n, time.Now())
			}
		})
	}()
	return nw, nil
}

func (nw *NodeWatch) observe(n *corev1.Node, now time.Time) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	old := nw.last[n.Name]
	nw.last[n.Name] = n
	mark := func(what string) {
		if nw.marks[n.Name] == nil {
			nw.marks[n.Name] = map[string][]time.Time{}
		}
		nw.marks[n.Name][what] = append(nw.marks[n.Name][what], now)
	}
	if old == nil {
		// A node that joined after the watch began.
		mark(MarkJoined)
		nw.bootIDs[n.Name] = []string{n.Status.NodeInfo.BootID}
		if nodes.IsReady(n) {
			mark(MarkReady)
		}
		return
	}
	if n.Spec.Unschedulable && !old.Spec.Unschedulable {
		mark(MarkCordoned)
	}
	if !n.Spec.Unschedulable && old.Spec.Unschedulable {
		mark(MarkUncordoned)
	}
	if nodes.IsReady(old) && !nodes.IsReady(n) {
		mark(MarkNotReady)
	}
	if !nodes.IsReady(old) && nodes.IsReady(n) {
		mark(MarkReady)
	}
	if id := n.Status.NodeInfo.BootID; id != "" && id != old.Status.NodeInfo.BootID {
		mark(MarkNewBootID)
		nw.bootIDs[n.Name] = append(nw.bootIDs[n.Name], id)
	}
	if c, was := nodes.Condition(n, v1alpha1.ConditionRebootRequired), nodes.Condition(old, v1alpha1.ConditionRebootRequired); c != nil && c.Status == corev1.ConditionTrue && (was == nil || was.Status != corev1.ConditionTrue) {
		mark(MarkRebootRequired)
	}
	if id := n.Annotations[v1alpha1.AnnotationRebootRequest]; id != "" && id != old.Annotations[v1alpha1.AnnotationRebootRequest] {
		mark(MarkRequested)
	}
	if id := n.Annotations[v1alpha1.AnnotationRebootAck]; id != "" && id != old.Annotations[v1alpha1.AnnotationRebootAck] {
		mark(MarkAcknowledged)
	}
	var down []string
	for name, m := range nw.last {
		if m.Spec.Unschedulable {
			down = append(down, name)
		}
	}
	if len(down) > 1 {
		sort.Strings(down)
		nw.overlaps = append(nw.overlaps, fmt.Sprintf("%s unschedulable together at %s", strings.Join(down, ", "), now.Format(time.RFC3339Nano)))
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

// Marks are the times node changed in the way what names (Mark...).
func (nw *NodeWatch) Marks(node, what string) []time.Time {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return append([]time.Time(nil), nw.marks[node][what]...)
}

// First is the first time node changed in the way what names, or the zero
// time.
func (nw *NodeWatch) First(node, what string) time.Time {
	if m := nw.Marks(node, what); len(m) > 0 {
		return m[0]
	}
	return time.Time{}
}

// BootIDs are the boot IDs node reported, the one at the start first.
func (nw *NodeWatch) BootIDs(node string) []string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return append([]string(nil), nw.bootIDs[node]...)
}
