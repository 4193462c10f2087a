//go:build e2e

package capi

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// machineWatch records, from a watch on the workload cluster's Machines in
// the management cluster, when each Machine appeared, began deleting and
// was gone, and the most Machines ever deleting at once.
type machineWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu           sync.Mutex
	created      map[string]time.Time
	deleting     map[string]time.Time
	gone         map[string]time.Time
	mostDeleting int
	events       int
}

func watchMachines(ctx context.Context, cluster string) (*machineWatch, error) {
	opts := []client.ListOption{client.InNamespace(work.Namespace), client.MatchingLabels{clusterv1.ClusterNameLabel: cluster}}
	var before clusterv1.MachineList
	if err := mgmt.Client.List(ctx, &before, opts...); err != nil {
		return nil, err
	}
	existing := map[string]bool{}
	for _, m := range before.Items {
		existing[m.Name] = true
	}
	w, err := mgmt.Client.(client.WithWatch).Watch(ctx, &clusterv1.MachineList{}, opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	mw := &machineWatch{cancel: cancel, done: make(chan struct{}), created: map[string]time.Time{},
		deleting: map[string]time.Time{}, gone: map[string]time.Time{}}
	go func() {
		defer close(mw.done)
		sim.Follow(ctx, w, func(ev watch.Event) {
			m, ok := ev.Object.(*clusterv1.Machine)
			if !ok {
				return
			}
			now := time.Now()
			mw.mu.Lock()
			defer mw.mu.Unlock()
			mw.events++
			if ev.Type == watch.Added && !existing[m.Name] {
				mw.created[m.Name] = now
			}
			if m.DeletionTimestamp != nil && mw.deleting[m.Name].IsZero() {
				mw.deleting[m.Name] = now
			}
			if ev.Type == watch.Deleted {
				mw.gone[m.Name] = now
			}
			n := 0
			for name := range mw.deleting {
				if mw.gone[name].IsZero() {
					n++
				}
			}
			mw.mostDeleting = max(mw.mostDeleting, n)
		})
	}()
	return mw, nil
}

// Stop ends the watch.
func (mw *machineWatch) Stop() {
	mw.cancel()
	<-mw.done
}

// summary is what the watch saw, for a test's log and failures.
func (mw *machineWatch) summary() string {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	return fmt.Sprintf("created %v, deleting %v, gone %v, at most %d deleting at once (%d events)",
		mw.created, mw.deleting, mw.gone, mw.mostDeleting, mw.events)
}

// count is how many Machines were created and began deleting.
func (mw *machineWatch) count() (created, deleting int) {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	return len(mw.created), len(mw.deleting)
}

func upToDate(m *clusterv1.Machine) bool {
	c := conditionOf(m, clusterv1.MachineUpToDateCondition)
	return c != nil && c.Status == metav1.ConditionTrue
}

func conditionOf(m *clusterv1.Machine, t string) *metav1.Condition {
	for i := range m.Status.Conditions {
		if m.Status.Conditions[i].Type == t {
			return &m.Status.Conditions[i]
		}
	}
	return nil
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }
