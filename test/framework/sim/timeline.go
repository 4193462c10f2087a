package sim

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/scheme"
)

// Printer writes timestamped lines, one at a time: the timelines of the
// sandbox and of the kind end-to-end tests.
type Printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

// NewPrinter prints to w, with times counted from now.
func NewPrinter(w io.Writer) *Printer { return &Printer{w: w, start: time.Now()} }

// Restart counts times from now on.
func (p *Printer) Restart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start = time.Now()
}

// Writer is where the lines go.
func (p *Printer) Writer() io.Writer { return p.w }

// Say prints a headline.
func (p *Printer) Say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "==> "+format+"\n", args...)
}

// Event prints what happened to a node, with its time.
func (p *Printer) Event(node, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%+8.3fs] %-20s %s\n", time.Since(p.start).Seconds(), node, fmt.Sprintf(format, args...))
}

// steps are the phases a successful reboot walks through, for the progress count.
var steps = []v1alpha1.Phase{v1alpha1.PhaseCordoning, v1alpha1.PhaseDraining, v1alpha1.PhaseRebooting,
	v1alpha1.PhaseWaitingForNodeReady, v1alpha1.PhaseUncordoning, v1alpha1.PhaseSucceeded}

// Progress is "[i/n]" for a phase of a successful reboot, else "".
func Progress(p v1alpha1.Phase) string {
	for i, s := range steps {
		if s == p {
			return fmt.Sprintf("[%d/%d]", i+1, len(steps))
		}
	}
	return ""
}

// Timeline prints what happens to nodes, NodeCycles, pods and Events.
type Timeline struct {
	out      *Printer
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	running  map[string]int
	nodes    map[string]*corev1.Node
	phases   map[string]v1alpha1.Phase
	podPhase map[string]corev1.PodPhase
}

// StartTimeline prints, until Stop, the changes to nodes and Events, to the
// NodeCycles of nodeCycleNamespace and to the pods of podNamespace.
func StartTimeline(ctx context.Context, cfg *rest.Config, out *Printer, nodeCycleNamespace, podNamespace string) (*Timeline, error) {
	ctx, cancel := context.WithCancel(ctx)
	t := &Timeline{out: out, cancel: cancel, running: map[string]int{}, nodes: map[string]*corev1.Node{},
		phases: map[string]v1alpha1.Phase{}, podPhase: map[string]corev1.PodPhase{}}
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		cancel()
		return nil, err
	}
	sources := []struct {
		list   client.ObjectList
		opts   []client.ListOption
		handle func(watch.Event)
	}{
		{&corev1.NodeList{}, nil, t.onNode},
		{&v1alpha1.NodeCycleList{}, []client.ListOption{client.InNamespace(nodeCycleNamespace)}, t.onNodeCycle},
		{&corev1.PodList{}, []client.ListOption{client.InNamespace(podNamespace)}, t.onPod},
		{&corev1.EventList{}, nil, t.onEvent},
	}
	for _, s := range sources {
		// Current state first, so that only changes are printed.
		if err := wc.List(ctx, s.list); err != nil {
			cancel()
			return nil, err
		}
		rv := s.list.(metav1.ListInterface).GetResourceVersion()
		items, _ := metaItems(s.list)
		for _, o := range items {
			t.seed(o)
		}
		w, err := wc.Watch(ctx, s.list, append(s.opts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})...)
		if err != nil {
			cancel()
			return nil, err
		}
		t.wg.Add(1)
		go func(handle func(watch.Event)) {
			defer t.wg.Done()
			Follow(ctx, w, handle)
		}(s.handle)
	}
	return t, nil
}

// Stop ends the watches.
func (t *Timeline) Stop() {
	t.cancel()
	t.wg.Wait()
}

// RunningOn counts, by node, the pods that started running since the start.
func (t *Timeline) RunningOn() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for k, v := range t.running {
		out[k] = v
	}
	return out
}

func metaItems(list client.ObjectList) ([]client.Object, error) {
	var out []client.Object
	switch l := list.(type) {
	case *corev1.NodeList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.PodList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *v1alpha1.NodeCycleList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	return out, nil
}

func (t *Timeline) seed(o client.Object) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch v := o.(type) {
	case *corev1.Node:
		t.nodes[v.Name] = v
	case *corev1.Pod:
		t.podPhase[v.Name] = v.Status.Phase
	case *v1alpha1.NodeCycle:
		t.phases[v.Name] = v.Status.Phase
	}
}

func (t *Timeline) onNode(ev watch.Event) {
	n, ok := ev.Object.(*corev1.Node)
	if !ok {
		return
	}
	t.mu.Lock()
	old := t.nodes[n.Name]
	t.nodes[n.Name] = n
	t.mu.Unlock()
	if old == nil {
		return
	}
	say := func(format string, args ...any) { t.out.Event(n.Name, format, args...) }
	if a, b := nodes.Condition(old, v1alpha1.ConditionRebootRequired), nodes.Condition(n, v1alpha1.ConditionRebootRequired); b != nil && (a == nil || a.Status != b.Status) {
		say("condition RebootRequired=%s (%s)", b.Status, b.Reason)
	}
	if !old.Spec.Unschedulable && n.Spec.Unschedulable {
		say("cordoned")
	}
	if old.Spec.Unschedulable && !n.Spec.Unschedulable {
		say("uncordoned")
	}
	if id := n.Annotations[v1alpha1.AnnotationRebootRequest]; id != "" && old.Annotations[v1alpha1.AnnotationRebootRequest] != id {
		say("reboot requested (request %s)", Short(id))
	}
	if id := n.Annotations[v1alpha1.AnnotationRebootAck]; id != "" && old.Annotations[v1alpha1.AnnotationRebootAck] != id {
		say("agent acknowledged the request and runs its reboot command")
	}
	if nodes.IsReady(old) && !nodes.IsReady(n) {
		say("NotReady (rebooting)")
	}
	if old.Status.NodeInfo.BootID != n.Status.NodeInfo.BootID && old.Status.NodeInfo.BootID != "" {
		say("new boot ID %s -> %s", Short(old.Status.NodeInfo.BootID), Short(n.Status.NodeInfo.BootID))
	}
	if !nodes.IsReady(old) && nodes.IsReady(n) {
		say("Ready")
	}
}

func (t *Timeline) onNodeCycle(ev watch.Event) {
	nc, ok := ev.Object.(*v1alpha1.NodeCycle)
	if !ok {
		return
	}
	t.mu.Lock()
	old, seen := t.phases[nc.Name]
	t.phases[nc.Name] = nc.Status.Phase
	t.mu.Unlock()
	switch {
	case !seen && ev.Type == watch.Added:
		t.out.Event(nc.Spec.NodeName, "NodeCycle %s/%s created", nc.Namespace, nc.Name)
	case seen && old != nc.Status.Phase && nc.Status.Phase != v1alpha1.PhasePending:
		t.out.Event(nc.Spec.NodeName, "%s NodeCycle phase %s: %s", Progress(nc.Status.Phase), nc.Status.Phase, nc.Status.Message)
	}
}

func (t *Timeline) onPod(ev watch.Event) {
	p, ok := ev.Object.(*corev1.Pod)
	if !ok {
		return
	}
	t.mu.Lock()
	old := t.podPhase[p.Name]
	t.podPhase[p.Name] = p.Status.Phase
	becameRunning := old != corev1.PodRunning && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil
	if becameRunning {
		t.running[p.Spec.NodeName]++
	}
	t.mu.Unlock()
	if becameRunning {
		t.out.Event(p.Spec.NodeName, "pod %s/%s Running", p.Namespace, p.Name)
	}
}

func (t *Timeline) onEvent(ev watch.Event) {
	e, ok := ev.Object.(*corev1.Event)
	if !ok || ev.Type != watch.Added || e.InvolvedObject.Kind != "Node" {
		return
	}
	if e.Reason == "Evicted" || strings.HasPrefix(e.Reason, "Eviction") || strings.HasPrefix(e.Reason, "Drain") && e.Type == corev1.EventTypeWarning {
		t.out.Event(e.InvolvedObject.Name, "%s", strings.ToLower(e.Message[:1])+e.Message[1:])
	}
}

// Short is the first 8 characters of an ID, or "" quoted.
func Short(id string) string {
	if i := strings.LastIndex(id, "/"); i >= 0 { // a request that names its cordon
		id = id[i+1:]
	}
	if len(id) > 8 {
		return id[:8]
	}
	if id == "" {
		return `""`
	}
	return id
}

// Follow hands every event of w to handle until ctx ends or w closes, then
// stops w.
func Follow(ctx context.Context, w watch.Interface, handle func(watch.Event)) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.ResultChan():
			if !ok {
				return
			}
			handle(ev)
		}
	}
}
