package nodecycle

import (
	"context"
	"fmt"
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
func TestPodWatchOpensOutsideTheLockWithADeadline(t *testing.T) {
	d := newPodWatch()
	d.openTimeout = time.Hour // only stopAll ends the opening below
	slow, requests := hangingCluster(t)
	opened := make(chan struct{})
	go func() {
		d.watch(context.Background(), types.NamespacedName{Namespace: "team-a", Name: "slow"}, slow, "worker-1", false)
		close(opened)
	}()
	<-requests // the watch is being opened

	other, otherRequests := hangingCluster(t)
	otherDone := make(chan struct{})
	go func() {
		d.watch(context.Background(), types.NamespacedName{Namespace: "team-b", Name: "other"}, other, "worker-1", false)
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
		d.watch(context.Background(), types.NamespacedName{Namespace: "team-a", Name: "slow"}, slow, "worker-1", false)
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

// watchingCluster is a workload cluster's API server whose pod watches send
// the events the test puts in send, as newline-delimited JSON.
func watchingCluster(t *testing.T) (*rest.Config, chan<- string) {
	send := make(chan string, 16)
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-done:
				return
			case typ := <-send:
				_, _ = fmt.Fprintf(w, `{"type":%q,"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"kube-proxy-x","namespace":"kube-system","resourceVersion":"2"}}}`+"\n", typ)
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return &rest.Config{Host: srv.URL}, send
}

// A drain is woken when a pod goes; a wait for Ready pods when a pod
// changes (its Ready condition did).
func TestPodWatchWakesOnWhatThePhaseWaitsFor(t *testing.T) {
	for _, tc := range []struct {
		changes bool
		wakes   map[string]bool
	}{
		{changes: false, wakes: map[string]bool{"MODIFIED": false, "DELETED": true}},
		{changes: true, wakes: map[string]bool{"MODIFIED": true, "DELETED": true}},
	} {
		d := newPodWatch()
		cfg, send := watchingCluster(t)
		d.watch(context.Background(), types.NamespacedName{Namespace: "team-a", Name: "nc"}, cfg, "worker-1", tc.changes)
		for _, typ := range []string{"MODIFIED", "DELETED"} {
			send <- typ
			select {
			case <-d.events:
				if !tc.wakes[typ] {
					t.Errorf("changes=%t: woken by %s", tc.changes, typ)
				}
			case <-time.After(2 * time.Second):
				if tc.wakes[typ] {
					t.Errorf("changes=%t: not woken by %s", tc.changes, typ)
				}
			}
		}
		d.stopAll()
	}
}
