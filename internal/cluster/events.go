package cluster

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/printable"
)

// Events records Events about a node where the people who run it look:
// `kubectl describe node` shows them, and in Cluster API mode
// `kubectl describe machine` too.
type Events interface {
	// Eventf records an Event about node (nil when the Node is gone);
	// related is the NodeCycle it is about, or nil.
	Eventf(node *corev1.Node, related runtime.Object, eventtype string, reason v1alpha1.Reason, action, note string, args ...any)
}

// NodeEvents records Events on the Node itself: the local mode, where the
// manager runs in the node's cluster.
type NodeEvents struct{ Recorder events.EventRecorder }

// Eventf implements Events.
func (e NodeEvents) Eventf(node *corev1.Node, related runtime.Object, eventtype string, reason v1alpha1.Reason, action, note string, args ...any) {
	if node == nil {
		return // nothing to record it on
	}
	e.Recorder.Eventf(node, related, eventtype, string(reason), action, note, args...)
}

// MachineEvents records Events about a workload node twice: on its Machine
// in the management cluster (where `kubectl describe machine` finds them by
// the Machine's UID) and on the Node in the workload cluster (where its
// users look), through the connection the manager already has.
type MachineEvents struct {
	// Regarding is the node's Machine as read (with its UID); nil once it
	// is gone (replaced): Events are then recorded on the related object
	// (the NodeCycle, which kubectl describe nodecycle shows).
	Regarding runtime.Object
	// Management records in the management cluster.
	Management events.EventRecorder
	// Workload records in the workload cluster; nil while it is not
	// connected.
	Workload events.EventRecorder
}

// Eventf implements Events.
func (e MachineEvents) Eventf(node *corev1.Node, related runtime.Object, eventtype string, reason v1alpha1.Reason, action, note string, args ...any) {
	// The workload's recorders are not the manager's: quote what users
	// wrote here too.
	note, args = "%s", []any{printable.String(fmt.Sprintf(note, args...))}
	switch {
	case e.Regarding != nil:
		e.Management.Eventf(e.Regarding, related, eventtype, string(reason), action, note, args...)
	case related != nil:
		e.Management.Eventf(related, nil, eventtype, string(reason), action, note, args...)
	}
	if node != nil && e.Workload != nil {
		// Only a Pod lives in the workload cluster; the NodeCycle does not.
		var inWorkload runtime.Object
		if pod, ok := related.(*corev1.Pod); ok {
			inWorkload = pod
		}
		e.Workload.Eventf(node, inWorkload, eventtype, string(reason), action, note, args...)
	}
}

// recorders hands out one Event recorder per connected workload cluster,
// made again when the cluster's connection is.
type recorders struct {
	mu        sync.Mutex
	byCluster map[client.ObjectKey]*recorder
}

type recorder struct {
	cfg         *rest.Config
	broadcaster events.EventBroadcaster
	recorder    events.EventRecorder
}

// lazy returns a recorder of the cluster whose connection has cfg that
// makes its Event broadcaster (a client, goroutines, a queue) at the first
// Event: most connected clusters never get one.
func (r *recorders) lazy(key client.ObjectKey, cfg *rest.Config) events.EventRecorder {
	return lazyRecorder{r: r, key: key, cfg: cfg}
}

type lazyRecorder struct {
	r   *recorders
	key client.ObjectKey
	cfg *rest.Config
}

// Eventf implements events.EventRecorder.
func (l lazyRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	if rec := l.r.get(l.key, l.cfg); rec != nil {
		rec.Eventf(regarding, related, eventtype, reason, action, note, args...)
	}
}

// get returns the recorder of the cluster whose connection has cfg.
func (r *recorders) get(key client.ObjectKey, cfg *rest.Config) events.EventRecorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec, ok := r.byCluster[key]; ok {
		if rec.cfg == cfg {
			return rec.recorder
		}
		rec.broadcaster.Shutdown() // a new connection: the old one is gone
		delete(r.byCluster, key)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	if err := b.StartRecordingToSinkWithContext(context.Background()); err != nil {
		return nil
	}
	rec := &recorder{cfg: cfg, broadcaster: b, recorder: b.NewRecorder(clientgoscheme.Scheme, "nodecycle-manager")}
	if r.byCluster == nil {
		r.byCluster = map[client.ObjectKey]*recorder{}
	}
	r.byCluster[key] = rec
	return rec.recorder
}

// stop flushes and stops every recorder.
func (r *recorders) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, rec := range r.byCluster {
		rec.broadcaster.Shutdown()
		delete(r.byCluster, key)
	}
}
