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

// podWatch ends a drain as soon as its last pod is gone, and the wait for a
// rebooted node's pods as soon as they are Ready, instead of at the next
// poll: while a NodeCycle drains or waits for its node's pods, one
// metadata-only watch of the pods of its node (field-selected on
// spec.nodeName: never a cache of all pods) wakes the NodeCycle up when a
// pod is deleted (a drain) or changes (a wait for Ready). A watch that
// ends is started again by the next reconcile; the poll stays as a
// fallback.
//
// A watch is opened outside the mutex and within openTimeout: a workload
// cluster that does not answer holds up only its own reconcile, for a
// bounded time, never another cluster's.
type podWatch struct {
	mu          sync.Mutex
	running     map[types.NamespacedName]runningWatch
	events      chan event.GenericEvent
	openTimeout time.Duration
}

// runningWatch is a watch's cancel and whether it wakes on every change.
type runningWatch struct {
	cancel  context.CancelFunc
	changes bool
}

// watchOpenTimeout bounds the opening of a pod watch.
const watchOpenTimeout = 10 * time.Second

func newPodWatch() *podWatch {
	return &podWatch{running: map[types.NamespacedName]runningWatch{}, events: make(chan event.GenericEvent, 64), openTimeout: watchOpenTimeout}
}

// watched says whether a NodeCycle in phase p has its node's pods watched.
func watched(p v1alpha1.Phase) bool {
	return p == v1alpha1.PhaseDraining || p == v1alpha1.PhaseWaitingForPods
}

// ensure runs the watch of nc's node, unless it runs already or the
// cluster offers no way to watch. While the NodeCycle waits for pods, every
// change of a pod wakes it; while it drains, a deletion.
func (d *podWatch) ensure(ctx context.Context, s *scope) {
	if cfg := s.workload().Config; cfg != nil {
		d.watch(ctx, types.NamespacedName{Namespace: s.nc.Namespace, Name: s.nc.Name}, cfg, s.node.Name, s.nc.Status.Phase == v1alpha1.PhaseWaitingForPods)
	}
}

// watch runs the watch of the pods on node for the NodeCycle key; changes
// says whether any change wakes it, or only a deletion.
func (d *podWatch) watch(ctx context.Context, key types.NamespacedName, cfg *rest.Config, node string, changes bool) {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		logf.FromContext(ctx).Error(err, "Watching the pods of the node; polling instead")
		return
	}
	// Claim the key, then open the watch without the lock: stop and
	// stopAll cancel an opening watch too.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.mu.Lock()
	if w, ok := d.running[key]; ok && w.changes == changes {
		d.mu.Unlock()
		cancel()
		return
	} else if ok {
		w.cancel() // a watch of the other kind: replaced
	}
	d.running[key] = runningWatch{cancel: cancel, changes: changes}
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
		d.forget(key, changes)
		cancel()
		logf.FromContext(ctx).Error(err, "Watching the pods of the node; polling instead")
		return
	}
	wake := &v1alpha1.NodeCycle{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	go func() {
		defer d.forget(key, changes)
		defer cancel()
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted || (changes && ev.Type == watch.Modified) {
				select {
				case d.events <- event.GenericEvent{Object: wake}:
				default: // a wake-up is pending already
				}
			}
		}
	}()
}

// stop ends the watch of a NodeCycle that no longer drains nor waits for
// pods.
func (d *podWatch) stop(key types.NamespacedName) {
	d.mu.Lock()
	w, ok := d.running[key]
	d.mu.Unlock()
	if ok {
		w.cancel()
	}
}

// stopAll ends every watch: the manager stops.
func (d *podWatch) stopAll() {
	d.mu.Lock()
	stops := make([]context.CancelFunc, 0, len(d.running))
	for _, w := range d.running {
		stops = append(stops, w.cancel)
	}
	d.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

// forget drops the watch of key when it is still the one of that kind.
func (d *podWatch) forget(key types.NamespacedName, changes bool) {
	d.mu.Lock()
	if w, ok := d.running[key]; ok && w.changes == changes {
		delete(d.running, key)
	}
	d.mu.Unlock()
}
