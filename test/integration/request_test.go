package integration

import (
	"bytes"
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/kubectlplugin"
)

// kubectl nodecycle against a running manager, as an operator uses it:
// bad requests are refused with a message, a pause holds a request and
// says who and why, resume lets it go, and status shows it all.
var _ = Describe("kubectl nodecycle", func() {
	It("requests a reboot, refuses bad requests, pauses, resumes and shows the status", func() {
		c := newCluster("plugin", 3)
		stop := startManager(c.managerFlags()...)
		defer stop()
		run := func(args ...string) (string, error) {
			var out bytes.Buffer
			err := kubectlplugin.Run(context.Background(), append(args, "-n", c.name), &out, func(string, string) (client.Client, error) { return env.Client, nil })
			return out.String(), err
		}
		status := func() string {
			out, err := run("status")
			Expect(err).NotTo(HaveOccurred())
			return out
		}

		By("refusing what the manager cannot do, with a message")
		_, err := run("request", "plugin-9")
		Expect(err).To(MatchError(ContainSubstring("refused: node plugin-9 does not exist")))
		_, err = run("request", c.node(1), "--strategy", "power-cycle")
		Expect(err).To(MatchError(ContainSubstring("refused: strategy power-cycle is not allowed for node plugin-1: its ladder is [reboot]")))
		c.setNode(c.node(3), func(n *corev1.Node) { n.Labels[v1alpha1.LabelExclude] = "true" })
		_, err = run("request", c.node(3))
		Expect(err).To(MatchError(ContainSubstring("refused: Node has the label nodecycle.io/exclude=true")))
		_, err = run("request", c.node(1), "--strategy", "explode")
		Expect(err).To(MatchError(ContainSubstring("want one of reboot, power-cycle, replace")))
		_, err = run("pause")
		Expect(err).To(MatchError(ContainSubstring("--reason is required")))
		Expect(status()).To(ContainSubstring("Request refused: node plugin-9 does not exist"))

		By("holding a request while paused, saying who paused and why")
		out, err := run("pause", "--reason", "change freeze\x1b[2J")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("paused: namespace plugin"))
		out, err = run("request", c.node(1), "--reason", "kernel CVE")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("accepted: strategy reboot"))
		// A reason with a terminal escape is shown escaped, by the plugin
		// and in the NodeCycle's message the manager writes (N8).
		Eventually(status).Should(MatchRegexp(`Paused: namespace plugin .*: .+: change freeze\\x1b\[2J`))
		Eventually(status).Should(MatchRegexp(`plugin-1-request-\S+ +plugin-1 +- +reboot +Pending .*Waiting: paused, namespace plugin: .+: change freeze\\x1b\[2J`))
		Expect(status()).NotTo(ContainSubstring("\x1b"))
		Expect(nodeCycles(c.name)).To(ContainElement(HaveField("Status.Message", HaveSuffix(`change freeze\x1b[2J`))))
		Expect(c.agents[c.node(1)].reboots()).To(Equal(0))

		By("rebooting the node, which asked for nothing, once resumed")
		out, err = run("resume")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("resumed: namespace plugin"))
		Eventually(status).Should(MatchRegexp(`plugin-1-request-\S+ +plugin-1 +- +reboot +Succeeded`))
		Expect(c.agents[c.node(1)].reboots()).To(Equal(1))
		Expect(status()).To(ContainSubstring("Paused: no"))
		// Events are recorded asynchronously.
		Eventually(func() []string { return eventReasons(c.node(1)) }).Should(ContainElements("NodeCycleCreated", "MaintenanceStarted", "RebootVerified", "MaintenanceCompleted"))
		for _, n := range []string{c.node(2), c.node(3)} {
			Expect(c.agents[n].reboots()).To(Equal(0), fmt.Sprintf("node %s", n))
		}
	})
})
