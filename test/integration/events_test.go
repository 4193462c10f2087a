package integration

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

var _ = Describe("Events", func() {
	// H4: the events.k8s.io recorder folds Events with the same regarding
	// object, reason and action into one series, whatever the note says.
	It("tell every evicted pod apart", func() {
		c := newCluster("evictions", 1)
		c.deploy("web", 3, 3)
		Eventually(func(g Gomega) {
			var pods corev1.PodList
			g.Expect(env.Client.List(c.ctx, &pods, client.InNamespace(c.name))).To(Succeed())
			scheduled := 0
			for _, p := range pods.Items {
				if p.Spec.NodeName == c.node(1) {
					scheduled++
				}
			}
			g.Expect(scheduled).To(Equal(3))
		}).Should(Succeed())
		c.agents[c.node(1)].requireReboot()
		stop, _ := startManagerWithMetrics(c.managerFlags()...)
		defer stop()
		Eventually(c.phases, 2*time.Minute).Should(Equal(map[string][]v1alpha1.Phase{c.node(1): {v1alpha1.PhaseSucceeded}}))

		notes := map[string]int32{}
		// Events are recorded asynchronously.
		Eventually(func(g Gomega) {
			list, err := env.Clientset.CoreV1().Events("").List(context.Background(), metav1.ListOptions{
				FieldSelector: fields.Set{"involvedObject.kind": "Node", "involvedObject.name": c.node(1), "reason": "Evicted"}.String(),
			})
			g.Expect(err).NotTo(HaveOccurred())
			notes = map[string]int32{}
			for _, e := range list.Items {
				notes[e.Message] += max(e.Count, 1)
			}
			g.Expect(notes).To(HaveLen(3), "one Event per evicted pod, each naming its pod: %v", notes)
		}).WithTimeout(10 * time.Second).Should(Succeed())
		for note, n := range notes {
			Expect(n).To(Equal(int32(1)), "%q counted %d times", note, n)
		}
	})
})
