package cooperative

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// In Cluster API mode each workload cluster's discovery decides: one
// manager drains the node of a cluster that serves EvictionRequests
// through them, and the node of one that does not through the Eviction
// API, at the same time.
func TestClusterAPIModeAsksEachClusterOnItsOwn(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(2 * time.Minute)
	g.SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	off, err := startEnv(false)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = off.Stop() })
	capi, err := sim.StartClusterAPI(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(capi.Stop)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	const ns = "fleet"
	workloads := map[string]*testCluster{}
	for name, e := range map[string]*localkube.Env{"cooperative": env, "classic": off} {
		_, err = capi.CreateCluster(ctx, ns, name, e.Config)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = capi.CreateMachineDeployment(ctx, ns, name, name+"-pool", 1, map[string]string{v1alpha1.AnnotationStrategy: "reboot"})
		g.Expect(err).NotTo(HaveOccurred())
		var ms []clusterv1.Machine
		g.Eventually(func() (err error) {
			ms, err = sim.ReadyMachines(ctx, env.Client, e.Client, ns, name+"-pool", 1)
			return err
		}).Should(Succeed())
		k := &sim.Kubelet{Client: e.Clientset, Selector: labels.SelectorFromSet(labels.Set{sim.NodeLabel: "true"}), DownTime: 300 * time.Millisecond, RebootOnRequest: true}
		go k.Run(ctx)
		c := &testCluster{t: t, g: g, env: e, ctx: ctx, name: "apps-" + name, nodeName: ms[0].Status.NodeRef.Name}
		g.Expect(e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.name}})).To(Succeed())
		workloads[name] = c
	}
	coop, classic := workloads["cooperative"], workloads["classic"]
	db := coop.pod("db-0", nil, map[string]int64{failover: 5000})
	r := &sim.Responder{Name: failover, Namespace: coop.name, Heartbeats: 2, Every: time.Second, Message: "moving the primary"}
	go r.Run(ctx, env.Client)
	web := classic.pod("web-0", nil, nil)

	stop, _, err := framework.StartManager(env.Config, os.Stderr, "--cluster-api", "--agent-pod-selector=", "--evict-unmanaged-pods",
		"--drain-timeout=2m", "--reboot-timeout=1m", "--retry-backoff=1s", "--max-retry-backoff=2s")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = stop() })
	coop.requireReboot()
	classic.requireReboot()

	g.Eventually(func(g Gomega) {
		var list v1alpha1.NodeCycleList
		g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(2))
		for _, nc := range list.Items {
			g.Expect(nc.Status.Phase).To(Equal(v1alpha1.PhaseSucceeded), "%s: %s", nc.Spec.ClusterName, nc.Status.Message)
		}
	}).Should(Succeed())
	g.Expect(coop.gone(db)()).To(BeTrue())
	g.Expect(classic.gone(web)()).To(BeTrue())
	g.Expect(coop.requests()).To(HaveLen(1), "the cooperative cluster's pod went through its EvictionRequest")
	_, completed := r.Times()
	g.Expect(completed).NotTo(BeZero(), "its responder was asked")
	g.Expect(coop.events(v1alpha1.ReasonEvictionResponder)).To(ContainElement(ContainSubstring("Pod apps-cooperative/db-0: responder acme.io/db-failover active")))
	g.Expect(classic.events(v1alpha1.ReasonEvicted)).NotTo(BeEmpty(), "the classic cluster's pod was evicted by the manager")
}
