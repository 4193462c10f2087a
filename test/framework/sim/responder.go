package sim

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lifecyclev1alpha1 "github.com/nodecycle/nodecycle/internal/apis/lifecycle/v1alpha1"
)

// Responder plays a workload's eviction responder (a database operator
// that moves its primary away before its pod may go): once the cluster
// makes it the active responder of an Eviction in its namespace, it sends
// Heartbeats heartbeats Every apart, with Message, then reports itself
// complete, which hands the eviction to the next responder (the cluster's
// imperative evictor). Heartbeats < 0 never completes.
type Responder struct {
	Name       string
	Namespace  string
	Heartbeats int
	Every      time.Duration
	Message    string

	mu        sync.Mutex
	active    time.Time // when it first saw itself active
	completed time.Time
}

// Run answers until ctx ends.
func (r *Responder) Run(ctx context.Context, c client.Client) {
	beats := map[string]int{} // by Eviction name
	tick := time.NewTicker(r.Every)
	defer tick.Stop()
	for {
		var list lifecyclev1alpha1.EvictionList
		if err := c.List(ctx, &list, client.InNamespace(r.Namespace)); err == nil {
			for i := range list.Items {
				r.respond(ctx, c, &list.Items[i], beats)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *Responder) respond(ctx context.Context, c client.Client, ev *lifecyclev1alpha1.Eviction, beats map[string]int) {
	active := false
	for _, tr := range ev.Status.TargetResponders {
		active = active || (tr.Name == r.Name && tr.State == lifecyclev1alpha1.ResponderActive)
	}
	if !active {
		return
	}
	r.mu.Lock()
	if r.active.IsZero() {
		r.active = time.Now()
	}
	r.mu.Unlock()
	now := metav1.Now()
	for i := range ev.Status.Responders {
		st := &ev.Status.Responders[i]
		if st.Name != r.Name {
			continue
		}
		if st.StartTime == nil {
			st.StartTime = &now
		}
		st.HeartbeatTime = &now
		st.Message = ptr.To(r.Message)
		if r.Heartbeats >= 0 && beats[ev.Name] >= r.Heartbeats {
			st.CompletionTime = &now
			st.Message = ptr.To("handed over; the pod may go")
		}
	}
	if err := c.Status().Update(ctx, ev); err != nil {
		return // a conflict: tried again at the next tick
	}
	beats[ev.Name]++
	if r.Heartbeats >= 0 && beats[ev.Name] > r.Heartbeats {
		r.mu.Lock()
		if r.completed.IsZero() {
			r.completed = time.Now()
		}
		r.mu.Unlock()
	}
}

// Times returns when it first saw itself active and when it completed.
func (r *Responder) Times() (active, completed time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active, r.completed
}
