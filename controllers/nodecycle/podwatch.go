package nodecycle

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// drainWatch ends a drain as soon as its last pod is gone, instead of at
// the next poll: while a NodeCycle drains, one metadata-only watch of the
// pods of its node (field-selected on spec.nodeName: never a cache of all
// pods) wakes the NodeCycle up when a pod is deleted. A watch that ends is
// started again by the next reconcile; the poll stays as a fallback.
//
// A watch is opened outside the mutex and within openTimeout: a workload
// cluster that does not answer holds up only its own reconcile, for a
// bounded time, never another cluster's.
type drainWatch struct {
	mu          sync.Mutex
	running     map[types.NamespacedName]context.CancelFunc
	events      chan event.GenericEvent
	openTimeout time.Duration
}

// watchOpenTimeout bounds the opening of a drain's watch.
const watchOpenTimeout = 10 * time.Second

func newDrainWatch() *drainWatch {
	return &drainWatch{running: map[types.NamespacedName]context.CancelFunc{}, events: make(chan event.GenericEvent, 64), openTimeout: watchOpenTimeout}
}

// ensure runs the watch of nc's node, unless it runs already or the
// cluster offers no way to watch.
func (d *drainWatch) ensure(ctx context.Context, s *scope) {
	if cfg := s.workload().Config; cfg != nil {
		d.watch(ctx, types.NamespacedName{Namespace: s.nc.Namespace, Name: s.nc.Name}, cfg, s.node.Name)
	}
}

// watch runs the watch of the pods on node for the NodeCycle key.
func (d *drainWatch) watch(ctx context.Context, key types.NamespacedName, cfg *rest.Config, node string) {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		logf.FromContext(ctx).Error(err, "Watching the pods being drained; the drain polls instead")
		return
	}
	// Claim the key, then open the watch without the lock: stop and
	// stopAll cancel an opening watch too.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.mu.Lock()
	if _, ok := d.running[key]; ok {
		d.mu.Unlock()
		cancel()
		return
	}
	d.running[key] = cancel
	d.mu.Unlock()
	deadline := time.AfterFunc(d.openTimeout, cancel)
	w, err := mc.Resource(corev1.SchemeGroupVersion.WithResource("pods")).Watch(wctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if !deadline.Stop() && err == nil {
		w.Stop()
		err = fmt.Errorf("not open within %s", d.openTimeout)
	}
	if err != nil {
		d.forget(key)
		cancel()
		logf.FromContext(ctx).Error(err, "Watching the pods being drained; the drain polls instead")
		return
	}
	wake := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	go func() {
		defer d.forget(key)
		defer cancel()
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted {
				select {
				case d.events <- event.GenericEvent{Object: wake}:
				default: // a wake-up is pending already
				}
			}
		}
	}()
}

// stop ends the watch of a NodeCycle that no longer drains.
func (d *drainWatch) stop(key types.NamespacedName) {
	d.mu.Lock()
	stop, ok := d.running[key]
	d.mu.Unlock()
	if ok {
		stop()
	}
}

// stopAll ends every watch: the manager stops.
func (d *drainWatch) stopAll() {
	d.mu.Lock()
	stops := make([]context.CancelFunc, 0, len(d.running))
	for _, stop := range d.running {
		stops = append(stops, stop)
	}
	d.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

func (d *drainWatch) forget(key types.NamespacedName) {
	d.mu.Lock()
	delete(d.running, key)
	d.mu.Unlock()
}
