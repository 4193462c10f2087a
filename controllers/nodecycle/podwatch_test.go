package nodecycle

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// hangingCluster is a workload cluster's API server that takes requests and
// never answers them; requests tells when one arrived.
func hangingCluster(t *testing.T) (*rest.Config, <-chan string) {
	requests := make(chan string, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests <- r.URL.Path
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return &rest.Config{Host: srv.URL}, requests
}

// N7: a workload cluster that does not answer the drain's watch holds up
// neither the other clusters' watches (the mutex is not held while a watch
// opens) nor itself for longer than the open timeout.
func TestDrainWatchOpensOutsideTheLockWithADeadline(t *testing.T) {
	d := newDrainWatch()
	d.openTimeout = time.Hour // only stopAll ends the opening below
	slow, requests := hangingCluster(t)
	opened := make(chan struct{})
	go func() {
		d.watch(context.Background(), types.NamespacedName{Namespace: "team-a", Name: "slow"}, slow, "worker-1")
		close(opened)
	}()
	<-requests // the watch is being opened

	other, otherRequests := hangingCluster(t)
	otherDone := make(chan struct{})
	go func() {
		d.watch(context.Background(), types.NamespacedName{Namespace: "team-b", Name: "other"}, other, "worker-1")
		close(otherDone)
	}()
	select {
	case <-otherRequests:
	case <-time.After(30 * time.Second):
		t.Fatal("another cluster's watch waited for the slow cluster's")
	}
	stopped := make(chan struct{})
	go func() { d.stopAll(); close(stopped) }()
	for name, ch := range map[string]chan struct{}{"stopAll": stopped, "the slow watch": opened, "the other watch": otherDone} {
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not return: the lock is held while a watch opens, or stopAll does not cancel an opening watch", name)
		}
	}

	d.openTimeout = 100 * time.Millisecond
	done := make(chan struct{})
	go func() {
		d.watch(context.Background(), types.NamespacedName{Namespace: "team-a", Name: "slow"}, slow, "worker-1")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("opening a watch has no deadline")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.running) != 0 {
		t.Fatalf("watches that never opened are still counted as running: %v", d.running)
	}
}
