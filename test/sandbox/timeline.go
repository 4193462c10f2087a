package sandbox

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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/controlplane"
)

// printer writes timestamped lines, one at a time.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "==> "+format+"\n", args...)
}

func (p *printer) event(node, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%+8.3fs] %-16s %s\n", time.Since(p.start).Seconds(), node, fmt.Sprintf(format, args...))
}

// steps are the phases a successful reboot walks through, for the progress count.
var steps = []v1alpha1.Phase{v1alpha1.PhaseCordoning, v1alpha1.PhaseDraining, v1alpha1.PhaseRebooting,
	v1alpha1.PhaseWaitingForNodeReady, v1alpha1.PhaseUncordoning, v1alpha1.PhaseSucceeded}

func progress(p v1alpha1.Phase) string {
	for i, s := range steps {
		if s == p {
			return fmt.Sprintf("[%d/%d]", i+1, len(steps))
		}
	}
	return ""
}

// timeline prints what happens to nodes, NodeCycles, pods and Events.
type timeline struct {
	out      *printer
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	running  map[string]int
	nodes    map[string]*corev1.Node
	phases   map[string]v1alpha1.Phase
	podPhase map[string]corev1.PodPhase
}

func startTimeline(ctx context.Context, env *controlplane.Env, out *printer) (*timeline, error) {
	ctx, cancel := context.WithCancel(ctx)
	t := &timeline{out: out, cancel: cancel, running: map[string]int{}, nodes: map[string]*corev1.Node{},
		phases: map[string]v1alpha1.Phase{}, podPhase: map[string]corev1.PodPhase{}}
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: controllers.Scheme()})
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
		{&v1alpha1.NodeCycleList{}, []client.ListOption{client.InNamespace(Namespace)}, t.onNodeCycle},
		{&corev1.PodList{}, []client.ListOption{client.InNamespace(DemoNamespace)}, t.onPod},
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
		}(s.handle)
	}
	return t, nil
}

func (t *timeline) stop() {
	t.cancel()
	t.wg.Wait()
}

func (t *timeline) runningOn() map[string]int {
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

func (t *timeline) seed(o client.Object) {
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

func (t *timeline) onNode(ev watch.Event) {
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
	say := func(format string, args ...any) { t.out.event(n.Name, format, args...) }
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
		say("reboot requested (request %s)", short(id))
	}
	if id := n.Annotations[v1alpha1.AnnotationRebootAck]; id != "" && old.Annotations[v1alpha1.AnnotationRebootAck] != id {
		say("agent acknowledged the request and runs its reboot command")
	}
	if nodes.IsReady(old) && !nodes.IsReady(n) {
		say("NotReady (rebooting)")
	}
	if old.Status.NodeInfo.BootID != n.Status.NodeInfo.BootID && old.Status.NodeInfo.BootID != "" {
		say("new boot ID %s -> %s", short(old.Status.NodeInfo.BootID), short(n.Status.NodeInfo.BootID))
	}
	if !nodes.IsReady(old) && nodes.IsReady(n) {
		say("Ready")
	}
}

func (t *timeline) onNodeCycle(ev watch.Event) {
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
		t.out.event(nc.Spec.NodeName, "NodeCycle %s/%s created", nc.Namespace, nc.Name)
	case seen && old != nc.Status.Phase && nc.Status.Phase != v1alpha1.PhasePending:
		t.out.event(nc.Spec.NodeName, "%s NodeCycle phase %s: %s", progress(nc.Status.Phase), nc.Status.Phase, nc.Status.Message)
	}
}

func (t *timeline) onPod(ev watch.Event) {
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
		t.out.event(p.Spec.NodeName, "pod %s/%s Running", p.Namespace, p.Name)
	}
}

func (t *timeline) onEvent(ev watch.Event) {
	e, ok := ev.Object.(*corev1.Event)
	if !ok || ev.Type != watch.Added || e.InvolvedObject.Kind != "Node" {
		return
	}
	if e.Reason == "Evicted" || strings.HasPrefix(e.Reason, "Drain") && e.Type == corev1.EventTypeWarning {
		t.out.event(e.InvolvedObject.Name, "%s", strings.ToLower(e.Message[:1])+e.Message[1:])
	}
}
