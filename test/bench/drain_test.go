package bench

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/test/framework"
)

// holdFinalizer keeps an evicted pod in place until the benchmark lets it
// go, as a pod that takes a while to stop would.
const holdFinalizer = "bench.nodecycle.io/hold"

// BenchmarkDrainEnd: the last pod of a node being drained is gone (its
// DELETED event) -> the NodeCycle leaves Draining (its watch), one pod per
// node that takes 300 ms to go, 5 nodes in a roll.
func BenchmarkDrainEnd(b *testing.B) {
	const run, count = "drainend", 5
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, sentinels := benchNodes(ctx, b, run, count, 200*time.Millisecond, nil, 0)
	for i := range count {
		n := fmt.Sprintf("%s-%d", run, i)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: run, Name: "app-" + n, Finalizers: []string{holdFinalizer}},
			Spec: corev1.PodSpec{NodeName: n, Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		if _, err := env.Clientset.CoreV1().Pods(run).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}

	var mu sync.Mutex
	gone, left := map[string]time.Time{}, map[string]time.Time{}
	pw, err := env.Clientset.CoreV1().Pods(run).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		released := map[string]bool{}
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			switch {
			case ev.Type == watch.Deleted:
				mu.Lock()
				gone[p.Spec.NodeName] = time.Now()
				mu.Unlock()
			case p.DeletionTimestamp != nil && !released[p.Name]:
				released[p.Name] = true
				go func(name string) {
					time.Sleep(300 * time.Millisecond)
					patch := []byte(`{"metadata":{"finalizers":null}}`)
					_, _ = env.Clientset.CoreV1().Pods(run).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
				}(p.Name)
			}
		}
	}()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	cw, err := wc.Watch(ctx, &v1alpha1.NodeCycleList{}, client.InNamespace(run))
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		draining := map[string]bool{}
		for ev := range cw.ResultChan() {
			nc, ok := ev.Object.(*v1alpha1.NodeCycle)
			if !ok {
				continue
			}
			node, phase := nc.Spec.NodeName, nc.Status.Phase
			mu.Lock()
			if phase == v1alpha1.PhaseDraining {
				draining[node] = true
			} else if draining[node] && left[node].IsZero() {
				left[node] = time.Now()
				if len(left) == count {
					close(done)
				}
			}
			mu.Unlock()
		}
	}()

	for _, s := range sentinels {
		if err = os.WriteFile(s, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	startBenchManager(ctx, b, run, env.Config)
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d drains ended", len(left), count)
	}
	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	for node, t := range left {
		g, ok := gone[node]
		if !ok {
			b.Fatalf("node %s left Draining with its pod still there", node)
		}
		lat = append(lat, t.Sub(g))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(framework.Millis(framework.Percentile(lat, 0.5)), "drain-end-p50-ms")
	b.ReportMetric(framework.Millis(framework.Percentile(lat, 1)), "drain-end-max-ms")
}
