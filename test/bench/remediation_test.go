package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/peers"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

// BenchmarkRemediation measures a MachineHealthCheck's remediation by
// nodecycle, on Cluster API's own controllers: from the node going NotReady
// until the Machine's pool has a Ready node on a new boot again. power-cycle:
// the same Machine power-cycled through ipmi_sim (soft-off timeout 1 s);
// replace: the Machine handed back and its replacement's node Ready. The
// MachineHealthCheck's own timeout (1 s) is included.
func BenchmarkRemediation(b *testing.B) {
	for _, strategy := range []v1alpha1.Strategy{v1alpha1.StrategyPowerCycle, v1alpha1.StrategyReplace} {
		b.Run(string(strategy), func(b *testing.B) { benchRemediation(b, strategy) })
	}
}

func benchRemediation(b *testing.B, strategy v1alpha1.Strategy) {
	ctx := context.Background()
	capi, c := clusterAPI(b)
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		b.Fatal(err)
	}
	runs++
	ns, cluster := fmt.Sprintf("bench-remediation-%d", runs), "bench"
	if _, err = capi.CreateCluster(ctx, ns, cluster, env.Config); err != nil {
		b.Fatal(err)
	}
	if _, err = capi.CreateControlPlaneMachine(ctx, ns, cluster, "bench-cp", nil); err != nil {
		b.Fatal(err)
	}
	if _, err = capi.CreateMachineDeployment(ctx, ns, cluster, "workers", 1, nil); err != nil {
		b.Fatal(err)
	}
	machines, err := readyMachinesWithin(ctx, c, ns, "workers", 1)
	if err != nil {
		b.Fatal(err)
	}
	node := machines[0].Status.NodeRef.Name
	if strategy == v1alpha1.StrategyPowerCycle {
		bmc, bmcErr := peers.StartBMC()
		if bmcErr != nil {
			b.Fatal(bmcErr)
		}
		defer bmc.Stop()
		if err = framework.LendBMC(ctx, c, ns, node, bmc); err != nil {
			b.Fatal(err)
		}
		kctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go (&framework.PowerKubelet{Client: cs, Node: node, Observe: bmc.Observe}).Run(kctx)
	}
	if err = c.Create(ctx, &v1alpha1.NodeCycleRemediationTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nodecycle"},
		Spec: v1alpha1.NodeCycleRemediationTemplateSpec{Template: v1alpha1.NodeCycleRemediationTemplateResource{
			Spec: v1alpha1.NodeCycleRemediationSpec{Strategies: []v1alpha1.Strategy{strategy}, RetryLimit: 1}}}}); err != nil {
		b.Fatal(err)
	}
	if err = c.Create(ctx, sim.MachineHealthCheck(ns, cluster, "workers", "nodecycle")); err != nil {
		b.Fatal(err)
	}
	stop, _, err := framework.StartManager(env.Config, os.Stderr, "--cluster-api", "--agent-pod-selector=", "--reboot-timeout=1m")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = stop() }()
	before := &corev1.Node{}
	if err = c.Get(ctx, client.ObjectKey{Name: node}, before); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	if err = sim.SetNodeStatus(ctx, cs, node, "", false); err != nil {
		b.Fatal(err)
	}
	// A Ready node of the pool on a new boot: the same Machine's, or its
	// replacement's.
	err = poll(3*time.Minute, func() error {
		ms, notReady := sim.ReadyMachines(ctx, c, c, ns, "workers", 1)
		if notReady != nil {
			return notReady
		}
		n := &corev1.Node{}
		if getErr := c.Get(ctx, client.ObjectKey{Name: ms[0].Status.NodeRef.Name}, n); getErr != nil {
			return getErr
		}
		if !nodes.IsReady(n) || (n.Name == node && nodes.BootID(n) == nodes.BootID(before)) {
			return fmt.Errorf("node %s not back yet", n.Name)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(start).Seconds(), "to-ready-s")
	var list v1alpha1.NodeCycleList
	if err = c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		b.Fatal(err)
	}
	for _, nc := range list.Items {
		b.Logf("NodeCycle %s created %s after the node went NotReady, phases %v", nc.Name, nc.CreationTimestamp.Sub(start).Round(time.Millisecond), nc.Status.PhaseDurations)
	}
}
