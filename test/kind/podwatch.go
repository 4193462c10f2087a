package kind

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// PodWatch records, from a watch on the pods of one node, when each pod was
// seen becoming Ready: its Ready condition turned True, or True again with
// a new transition time (a pod whose containers started again).
type PodWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	pods   map[string]*corev1.Pod
	readyT map[string]metav1.Time // the Ready transition time last seen True
	ready  map[string][]time.Time
}

// WatchPods starts recording the pods of node from their current state.
func (c *Cluster) WatchPods(ctx context.Context, node string) (*PodWatch, error) {
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()}
	list, err := c.Clientset.CoreV1().Pods("").List(ctx, opts)
	if err != nil {
		return nil, err
	}
	opts.ResourceVersion = list.ResourceVersion
	w, err := c.Clientset.CoreV1().Pods("").Watch(ctx, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	pw := &PodWatch{cancel: cancel, done: make(chan struct{}), pods: map[string]*corev1.Pod{},
		readyT: map[string]metav1.Time{}, ready: map[string][]time.Time{}}
	for i := range list.Items {
		p := &list.Items[i]
		pw.pods[p.Namespace+"/"+p.Name] = p
		if c := nodes.PodReady(p); c != nil && c.Status == corev1.ConditionTrue {
			pw.readyT[p.Namespace+"/"+p.Name] = c.LastTransitionTime
		}
	}
	go func() {
		defer close(pw.done)
		sim.Follow(ctx, w, func(ev watch.Event) {
			if p, isPod := ev.Object.(*corev1.Pod); isPod && (ev.Type == watch.Modified || ev.Type == watch.Added) {
				pw.observe(p, time.Now())
			}
		})
	}()
	return pw, nil
}

func (pw *PodWatch) observe(p *corev1.Pod, now time.Time) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	key := p.Namespace + "/" + p.Name
	pw.pods[key] = p
	c := nodes.PodReady(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		delete(pw.readyT, key)
		return
	}
	if last, seen := pw.readyT[key]; seen && last.Equal(&c.LastTransitionTime) {
		return
	}
	pw.readyT[key] = c.LastTransitionTime
	pw.ready[key] = append(pw.ready[key], now)
}

// Pods are the pods seen on the node (namespace/name), with their last
// state, those that pick says.
func (pw *PodWatch) Pods(pick func(*corev1.Pod) bool) []string {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	var out []string
	for key, p := range pw.pods {
		if pick(p) {
			out = append(out, key)
		}
	}
	return out
}

// ReadyAfter is the first time after t the pod was seen becoming Ready, or
// the zero time.
func (pw *PodWatch) ReadyAfter(pod string, t time.Time) time.Time {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	for _, at := range pw.ready[pod] {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// Stop ends the watch.
func (pw *PodWatch) Stop() {
	pw.cancel()
	<-pw.done
}
