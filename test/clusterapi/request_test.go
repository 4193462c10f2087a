package clusterapi

import (
	"bytes"
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/kubectlplugin"
)

// An on-demand request in Cluster API mode names the workload cluster; the
// manager fills it in from the Machine's MachineDeployment, or refuses it.
var _ = Describe("On-demand requests of a workload node", func() {
	It("reboot an opted-in Machine's node, and refuse what its MachineDeployment does not allow", func(ctx SpecContext) {
		const ns, name = "request", "asked"
		_, m := clusterWithOneMachine(ctx, ns, name)
		node := m.Status.NodeRef.Name
		startKubelet(env.Config, time.Second)
		startManager()
		run := func(args ...string) (string, error) {
			var out bytes.Buffer
			err := kubectlplugin.Run(context.Background(), append(args, "-n", ns), &out, func(string, string) (client.Client, error) { return k8s, nil })
			return out.String(), err
		}
		_, err := run("request", node, "--cluster", "nope")
		Expect(err).To(MatchError(ContainSubstring("refused: Cluster request/nope does not exist")))
		_, err = run("request", node)
		Expect(err).To(MatchError(ContainSubstring("refused: spec.clusterName is required")))
		_, err = run("request", node, "--cluster", name, "--strategy", "replace")
		Expect(err).To(MatchError(ContainSubstring("refused: strategy replace is not allowed for node " + node + ": its ladder is [reboot] (from its MachineDeployment's nodecycle.io/strategy)")))

		out, err := run("request", node, "--cluster", name, "--reason", "firmware")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("accepted: strategy reboot"))
		var asked v1alpha1.NodeCycle
		Eventually(func(g Gomega) {
			for _, nc := range cyclesIn(ctx, ns) {
				if nc.Spec.Request != nil && nc.Status.Reason != v1alpha1.ReasonRequestRefused {
					asked = nc
				}
			}
			g.Expect(asked.Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), "%s: %s", asked.Status.Phase, asked.Status.Message)
		}).WithTimeout(time.Minute).Should(Succeed())
		Expect(asked.Spec.MachineName).To(Equal(m.Name))
		// Events are recorded asynchronously.
		Eventually(func() []string { return eventsOn(ctx, ns, "Machine", m.Name) }).Should(ContainElements(HavePrefix("NodeCycleCreated: On-demand request"), HavePrefix("RebootVerified: ")))
	})
})
