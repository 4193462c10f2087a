// Package clusterapi tests the manager's Cluster API mode against a real
// kube-apiserver with Cluster API's own Machine, MachineSet and
// MachineDeployment controllers running in-process.
package clusterapi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
	"github.com/nodecycle/nodecycle/test/framework/sim"
)

func TestClusterAPI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Cluster API")
}

var (
	env  *localkube.Env
	capi *sim.ClusterAPIControllers
	k8s  client.Client
)

var _ = BeforeSuite(func() {
	framework.SetLogger(GinkgoWriter)
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	var err error
	env, err = localkube.Start()
	Expect(err).NotTo(HaveOccurred())
	capi, err = sim.StartClusterAPI(env.Config)
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(env.Config, client.Options{Scheme: controllers.Scheme()})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if capi != nil {
		capi.Stop()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// kubectl runs the kubectl of the test binaries and returns its output.
func kubectl(args ...string) string {
	GinkgoHelper()
	out, err := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), args...).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	return string(out)
}

// startManager runs the real manager in Cluster API mode until stop is called.
// startManager runs the manager in Cluster API mode until the spec ends,
// or until stop (which may be called more than once) is called earlier.
func startManager(args ...string) (stop func()) {
	GinkgoHelper()
	stopManager, _, err := framework.StartManager(env.Config, GinkgoWriter, append([]string{"--cluster-api", "--agent-pod-selector="}, args...)...)
	Expect(err).NotTo(HaveOccurred())
	var once sync.Once
	stop = func() { once.Do(func() { Expect(stopManager()).To(Succeed()) }) }
	DeferCleanup(stop)
	return stop
}

// startKubelet plays the kubelets of the provisioned nodes of a workload
// cluster: a reboot request takes the node down for downTime and brings it
// back with a new boot ID.
func startKubelet(cfg *rest.Config, downTime time.Duration) *sim.Kubelet {
	GinkgoHelper()
	cs, err := kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	k := &sim.Kubelet{Client: cs, Selector: labels.SelectorFromSet(labels.Set{sim.NodeLabel: "true"}), DownTime: downTime, RebootOnRequest: true, InFlight: &sim.InFlight{}}
	ctx, cancel := context.WithCancel(context.Background())
	go k.Run(ctx)
	DeferCleanup(cancel)
	return k
}

// readyMachines waits until the MachineDeployment has n Machines, each with
// a Ready Node in the workload cluster c, and returns them.
func readyMachines(ctx context.Context, c client.Client, namespace, md string, n int) []clusterv1.Machine {
	GinkgoHelper()
	var ms []clusterv1.Machine
	Eventually(func() (err error) {
		ms, err = sim.ReadyMachines(ctx, k8s, c, namespace, md, n)
		return err
	}).WithTimeout(2 * time.Minute).Should(Succeed())
	return ms
}

// clusterWithPool creates Cluster cluster in namespace ns, its workload
// cluster the envtest API server, with a MachineDeployment pool of n
// Machines opted in with strategy; it returns the Machines once Ready.
func clusterWithPool(ctx context.Context, ns, cluster, pool string, n int, strategy string) []clusterv1.Machine {
	GinkgoHelper()
	_, err := capi.CreateCluster(ctx, ns, cluster, env.Config)
	Expect(err).NotTo(HaveOccurred())
	_, err = capi.CreateMachineDeployment(ctx, ns, cluster, pool, int32(n), map[string]string{v1alpha1.AnnotationStrategy: strategy})
	Expect(err).NotTo(HaveOccurred())
	return readyMachines(ctx, k8s, ns, pool, n)
}

// requireReboot sets RebootRequired=True on a workload Node, as its agent would.
func requireReboot(ctx context.Context, c client.Client, name string) {
	GinkgoHelper()
	Expect(sim.RequireReboot(ctx, c, name)).To(Succeed())
}

// cyclesIn returns the NodeCycles of a namespace.
func cyclesIn(ctx context.Context, namespace string) []v1alpha1.NodeCycle {
	GinkgoHelper()
	var list v1alpha1.NodeCycleList
	Expect(k8s.List(ctx, &list, client.InNamespace(namespace))).To(Succeed())
	return list.Items
}

// eventsOn returns the reasons of the Events recorded on an object.
func eventsOn(ctx context.Context, namespace, kind, name string) []string {
	GinkgoHelper()
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(namespace))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name {
			reasons = append(reasons, fmt.Sprintf("%s: %s", e.Reason, e.Note))
		}
	}
	return reasons
}

// eventsMissingUID returns the reasons of the Events about an object that
// do not carry its UID: kubectl describe does not show those.
func eventsMissingUID(ctx context.Context, namespace, kind, name string, uid types.UID) []string {
	GinkgoHelper()
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(namespace))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Regarding.UID != uid {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

// controlPlaneNode returns the node of a control-plane Machine, failing g
// while it has none.
func controlPlaneNode(ctx context.Context, g Gomega, namespace, machine string) string {
	m := &clusterv1.Machine{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: machine}, m)).To(Succeed())
	g.Expect(m.Status.NodeRef.IsDefined()).To(BeTrue(), "Machine %s has no node yet", machine)
	return m.Status.NodeRef.Name
}

// watchEvents calls f, holding mu, for every event of a watch of list's kind
// until the spec ends: the tests check "never two at once" from a watch,
// which sees every change, not from polls, which can miss one. The watch
// it returns fails expectAlive if it saw nothing or ended before the spec.
func watchEvents[T client.Object](ctx context.Context, list client.ObjectList, mu *sync.Mutex, f func(deleted bool, obj T), opts ...client.ListOption) *watched {
	GinkgoHelper()
	w, err := client.NewWithWatch(env.Config, client.Options{Scheme: k8s.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	watcher, err := w.Watch(ctx, list, opts...)
	Expect(err).NotTo(HaveOccurred())
	rec := &watched{}
	DeferCleanup(func() { rec.stopped.Store(true); watcher.Stop() })
	go func() {
		for ev := range watcher.ResultChan() {
			obj, ok := ev.Object.(T)
			if !ok {
				rec.endedEarly.Store(!rec.stopped.Load())
				continue
			}
			rec.events.Add(1)
			mu.Lock()
			f(ev.Type == watch.Deleted, obj)
			mu.Unlock()
		}
		if !rec.stopped.Load() && ctx.Err() == nil {
			rec.endedEarly.Store(true)
		}
	}()
	return rec
}

// watched is what a test watch saw of itself.
type watched struct {
	events              atomic.Int64
	endedEarly, stopped atomic.Bool
}

// expectAlive fails unless the watch saw events and is still open: what it
// did not see, it cannot vouch for.
func (w *watched) expectAlive() {
	GinkgoHelper()
	Expect(w.endedEarly.Load()).To(BeFalse(), "a watch ended before the spec did")
	Expect(w.events.Load()).To(BeNumerically(">", 0), "a watch saw nothing")
}

// mostCordoned follows, from a Node watch, the simulated nodes of namespace
// ns's Machines (their providerID names it) cordoned (spec.unschedulable)
// and returns how many were at most at once so far.
func mostCordoned(ctx context.Context, ns string) func() int {
	GinkgoHelper()
	var mu sync.Mutex
	cordoned, most := map[string]bool{}, 0
	w := watchEvents(ctx, &corev1.NodeList{}, &mu, func(deleted bool, n *corev1.Node) {
		if !strings.HasPrefix(n.Spec.ProviderID, "test:///"+ns+"/") {
			return
		}
		if deleted || !n.Spec.Unschedulable {
			delete(cordoned, n.Name)
		} else {
			cordoned[n.Name] = true
		}
		most = max(most, len(cordoned))
	}, client.MatchingLabels{sim.NodeLabel: "true"})
	return func() int { GinkgoHelper(); w.expectAlive(); mu.Lock(); defer mu.Unlock(); return most }
}

// mostDeleting follows, from a watch, the Machines of a MachineDeployment
// being deleted, and returns how many were at most at once so far.
func mostDeleting(ctx context.Context, ns, md string) func() int {
	GinkgoHelper()
	var mu sync.Mutex
	deleting, most := map[string]bool{}, 0
	w := watchEvents(ctx, &clusterv1.MachineList{}, &mu, func(deleted bool, m *clusterv1.Machine) {
		switch {
		case deleted:
			delete(deleting, m.Name)
		case !m.DeletionTimestamp.IsZero():
			deleting[m.Name] = true
		}
		most = max(most, len(deleting))
	}, client.InNamespace(ns), client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: md})
	return func() int { GinkgoHelper(); w.expectAlive(); mu.Lock(); defer mu.Unlock(); return most }
}
