package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

var _ = Describe("Node lifecycle conditions", func() {
	It("are seen within 5 s of each phase: planned while frozen, draining while a PDB holds, drained, all cleared at the end", func() {
		c := newCluster("lifecycle", 2)
		node := c.node(1)
		c.deploy("web", 2, 0)
		h := recordLifecycle(c.ctx, node, func() v1alpha1.Phase {
			var list v1alpha1.NodeCycleList
			if err := env.Client.List(c.ctx, &list, client.InNamespace(c.name)); err != nil || len(list.Items) == 0 {
				return ""
			}
			return list.Items[0].Status.Phase
		})
		c.agents[node].requireReboot()
		freeze := fmt.Sprintf("--freeze=%s,%s,lifecycle test", time.Now().Add(-time.Minute).Format(time.RFC3339), time.Now().Add(4*time.Second).Format(time.RFC3339))
		stop := startManager(c.managerFlags(freeze)...)
		defer stop()

		Eventually(c.phases, time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseDraining}}))
		Eventually(func() string {
			return h.seen(v1alpha1.PhaseDraining, "False/MaintenanceStarted True/Draining False/Draining True/Draining")
		}, 6*time.Second).
			Should(BeEmpty())
		Expect(nodes.Condition(c.getNode(node), v1alpha1.ConditionDrainInProgress).Message).To(ContainSubstring("blocked by PDB"))
		relaxPDB(c, "web")
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{node: {v1alpha1.PhaseSucceeded}}))
		Eventually(func() string {
			return h.seen(v1alpha1.PhaseSucceeded, "False/MaintenanceCompleted False/MaintenanceCompleted False/MaintenanceCompleted False/MaintenanceCompleted")
		}, 6*time.Second).Should(BeEmpty())

		for phase, want := range map[v1alpha1.Phase]string{
			v1alpha1.PhasePending:             "True/Frozen False/MaintenancePending False/MaintenancePending False/MaintenancePending",
			v1alpha1.PhaseWaitingForNodeReady: "False/MaintenanceStarted False/Drained True/Drained True/WaitingForNodeReady",
		} {
			Expect(h.seen(phase, want)).To(BeEmpty())
		}
	})
})

// lifecycleRecord is what a Node watch saw of the lifecycle conditions, and
// when each phase of the node's NodeCycle was first seen.
type lifecycleRecord struct {
	mu     sync.Mutex
	states []timedState
	phases map[v1alpha1.Phase]time.Time
}

type timedState struct {
	at    time.Time
	state string
}

// recordLifecycle watches the node and polls the phase every 20 ms until ctx ends.
func recordLifecycle(ctx context.Context, node string, phase func() v1alpha1.Phase) *lifecycleRecord {
	GinkgoHelper()
	r := &lifecycleRecord{phases: map[v1alpha1.Phase]time.Time{}}
	w, err := env.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + node})
	Expect(err).NotTo(HaveOccurred())
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if n, ok := ev.Object.(*corev1.Node); ok {
				r.mu.Lock()
				r.states = append(r.states, timedState{at: time.Now(), state: lifecycleState(n)})
				r.mu.Unlock()
			}
		}
	}()
	go func() {
		for ctx.Err() == nil {
			if p := phase(); p != "" {
				r.mu.Lock()
				if _, ok := r.phases[p]; !ok {
					r.phases[p] = time.Now()
				}
				r.mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return r
}

// seen says "" when the watch saw the conditions in state want within 5 s
// after the phase was first seen, else what it saw.
func (r *lifecycleRecord) seen(p v1alpha1.Phase, want string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	from, ok := r.phases[p]
	if !ok {
		return fmt.Sprintf("phase %s never seen", p)
	}
	var saw []string
	for _, s := range r.states {
		// The watches are two streams: a write seen a moment before its phase is its phase's.
		if s.at.Before(from.Add(-time.Second)) || s.at.After(from.Add(5*time.Second)) {
			continue
		}
		if s.state == want {
			return ""
		}
		saw = append(saw, s.state)
	}
	return fmt.Sprintf("in %s, want %q, saw %q", p, want, strings.Join(saw, " | "))
}

// lifecycleState is "Status/Reason" of MaintenancePlanned, DrainInProgress,
// Drained and MaintenanceInProgress.
func lifecycleState(n *corev1.Node) string {
	parts := make([]string, len(nodes.LifecycleConditions))
	for i, t := range nodes.LifecycleConditions {
		parts[i] = "absent"
		if c := nodes.Condition(n, t); c != nil {
			parts[i] = string(c.Status) + "/" + c.Reason
		}
	}
	return strings.Join(parts, " ")
}
