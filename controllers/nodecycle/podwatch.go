package nodecycle

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// drainWatch ends a drain as soon as its last pod is gone, instead of at
// the next poll: while a NodeCycle drains, one metadata-only watch of the
// pods of its node (field-selected on spec.nodeName: never a cache of all
// pods) wakes the NodeCycle up when a pod is deleted. A watch that ends is
// started again by the next reconcile; the poll stays as a fallback.
type drainWatch struct {
	mu      sync.Mutex
	running map[types.NamespacedName]context.CancelFunc
	events  chan event.GenericEvent
}

func newDrainWatch() *drainWatch {
	return &drainWatch{running: map[types.NamespacedName]context.CancelFunc{}, events: make(chan event.GenericEvent, 64)}
}

// ensure runs the watch of nc's node, unless it runs already or the
// cluster offers no way to watch.
func (d *drainWatch) ensure(ctx context.Context, s *step) {
	cfg := s.workload().Config
	if cfg == nil {
		return
	}
	key := types.NamespacedName{Namespace: s.nc.Namespace, Name: s.nc.Name}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.running[key]; ok {
		return
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		logf.FromContext(ctx).Error(err, "Watching the pods being drained; the drain polls instead")
		return
	}
	w, err := mc.Resource(corev1.SchemeGroupVersion.WithResource("pods")).Watch(context.WithoutCancel(ctx), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", s.node.Name).String(),
	})
	if err != nil {
		logf.FromContext(ctx).Error(err, "Watching the pods being drained; the drain polls instead")
		return
	}
	d.running[key] = w.Stop
	wake := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	go func() {
		defer d.forget(key)
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
