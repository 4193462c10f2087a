// Package integration tests the agent and the manager against a real
// kube-apiserver, with kube-controller-manager and kube-scheduler running
// and simulated kubelets.
package integration

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/agent"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/internal/signing"
	"github.com/nodecycle/nodecycle/test/framework"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

func TestIntegration(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Integration")
}

var env *localkube.Env

var _ = BeforeSuite(func() {
	framework.SetLogger(GinkgoWriter)
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	var err error
	env, err = localkube.Start()
	Expect(err).NotTo(HaveOccurred())
	Expect(env.StartControllers()).To(Succeed())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// startManager runs the real manager with the given flags (plus test
// defaults) until the returned stop function is called.
func startManager(args ...string) (stop func()) {
	stop, _ = startManagerWithMetrics(args...)
	return stop
}

// startManagerWithMetrics is startManager, also returning the registry of
// the manager's own metrics.
func startManagerWithMetrics(args ...string) (stop func(), metrics *prometheus.Registry) {
	GinkgoHelper()
	stopManager, metrics, err := framework.StartManager(env.Config, GinkgoWriter, args...)
	Expect(err).NotTo(HaveOccurred())
	return func() { Expect(stopManager()).To(Succeed()) }, metrics
}

// testAgent is a real agent with a sentinel file in a temp dir and a reboot
// command that appends to a marker file and removes the sentinel, as a real
// reboot clears /var/run.
type testAgent struct {
	node, dir string
	cancel    context.CancelFunc
	done      chan error
	agent     *agent.Agent
	// client is the agent's API client; the test's admin client when nil.
	client kubernetes.Interface
	// namespace holds the request key the agent checks requests with
	// (the manager's --namespace); nodecycle-system when empty.
	namespace string
}

// requestKeyNamespace is where the reboot requests the tests write by
// hand are signed from, as the manager of config/default signs them.
const requestKeyNamespace = "nodecycle-system"

// signedRequest is a reboot request id for node, with the signature
// nodecycle's manager would write with it (the key of namespace, made
// here when there is none).
func signedRequest(node, id string) map[string]*string {
	GinkgoHelper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: requestKeyNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	secret, err := signing.NewSecret(requestKeyNamespace)
	Expect(err).NotTo(HaveOccurred())
	if cerr := env.Client.Create(ctx, secret); apierrors.IsAlreadyExists(cerr) {
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	} else {
		Expect(cerr).NotTo(HaveOccurred())
	}
	key, err := signing.FromSecret(secret)
	Expect(err).NotTo(HaveOccurred())
	return map[string]*string{
		v1alpha1.AnnotationRebootRequest:   ptr.To(id),
		v1alpha1.AnnotationRebootSignature: ptr.To(signing.Sign(key, signing.Request{Node: node, ID: id}, time.Now())),
	}
}

func (a *testAgent) sentinel() string { return filepath.Join(a.dir, "reboot-required") }
func (a *testAgent) marker() string   { return filepath.Join(a.dir, "reboots") }

// reboots counts the reboot commands the agent ran.
func (a *testAgent) reboots() int {
	b, err := os.ReadFile(a.marker())
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

func (a *testAgent) requireReboot() {
	GinkgoHelper()
	Expect(os.WriteFile(a.sentinel(), []byte("*** System restart required ***\n"), 0o644)).To(Succeed())
}

func newTestAgent(node string) *testAgent {
	return &testAgent{node: node, dir: GinkgoT().TempDir()}
}

func (a *testAgent) start() {
	GinkgoHelper()
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan error, 1)
	cmd := fmt.Sprintf("echo rebooted >> %s && rm -f %s", a.marker(), a.sentinel())
	cs := a.client
	if cs == nil {
		cs = env.Clientset
	}
	a.agent = &agent.Agent{
		NodeName:      a.node,
		Client:        cs,
		Checker:       agent.FileChecker{Path: a.sentinel()},
		Rebooter:      agent.CommandRebooter{Argv: agent.HostCommand(cmd, false), Timeout: 10 * time.Second},
		SentinelFile:  a.sentinel(),
		Namespace:     cmp.Or(a.namespace, requestKeyNamespace),
		RecheckPeriod: time.Hour, // detection must come from the file watch
		Log:           ctrl.Log.WithName("agent"),
	}
	ready := a.agent.Ready()
	go func() { a.done <- a.agent.Run(ctx) }()
	Eventually(ready).Should(BeClosed())
}

func (a *testAgent) stop() {
	GinkgoHelper()
	a.cancel()
	Eventually(a.done).Should(Receive(BeNil()))
}

func conditionStatus(name, condType string) func() corev1.ConditionStatus {
	return func() corev1.ConditionStatus {
		n, err := env.Clientset.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return "error: " + corev1.ConditionStatus(err.Error())
		}
		if c := nodes.Condition(n, corev1.NodeConditionType(condType)); c != nil {
			return c.Status
		}
		return ""
	}
}

// invariant follows every update of a set of nodes through one watch and
// remembers the most nodes that were cordoned (spec.unschedulable, which
// the manager writes before anything else and clears last) at once. The
// watch must live as long as the test: a watch that ends early is
// recorded, and expectAlive fails.
type invariant struct {
	mu          sync.Mutex
	cordoned    map[string]bool
	maxCordoned int
	requested   map[string]bool
	events      int
	endedEarly  bool
	// zone and maxPerZone: the most nodes of one topology.kubernetes.io/zone
	// cordoned at once.
	zone       map[string]string
	maxPerZone int
}

func watchInvariant(ctx context.Context, selector labels.Selector) *invariant {
	GinkgoHelper()
	inv := &invariant{cordoned: map[string]bool{}, requested: map[string]bool{}, zone: map[string]string{}}
	list, err := env.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	Expect(err).NotTo(HaveOccurred())
	for i := range list.Items {
		inv.observe(&list.Items[i])
	}
	w, err := env.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{LabelSelector: selector.String(), ResourceVersion: list.ResourceVersion})
	Expect(err).NotTo(HaveOccurred())
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if n, ok := ev.Object.(*corev1.Node); ok && ev.Type != watch.Error {
				inv.observe(n)
			} else {
				inv.end()
			}
		}
		if ctx.Err() == nil {
			inv.end()
		}
	}()
	return inv
}

func (inv *invariant) observe(n *corev1.Node) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.events++
	inv.cordoned[n.Name] = n.Spec.Unschedulable
	if n.Annotations[v1alpha1.AnnotationRebootRequest] != "" {
		inv.requested[n.Name] = true
	}
	inv.maxCordoned = max(inv.maxCordoned, count(inv.cordoned))
	inv.zone[n.Name] = n.Labels[corev1.LabelTopologyZone]
	perZone := map[string]int{}
	for name, c := range inv.cordoned {
		if c && inv.zone[name] != "" {
			perZone[inv.zone[name]]++
			inv.maxPerZone = max(inv.maxPerZone, perZone[inv.zone[name]])
		}
	}
}

func (inv *invariant) end() {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.endedEarly = true
}

func (inv *invariant) snapshot() (maxCordoned int, requested map[string]bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	r := map[string]bool{}
	for k, v := range inv.requested {
		r[k] = v
	}
	return inv.maxCordoned, r
}

// expectAlive fails unless the watch saw the nodes change and is still
// open: what it did not see, it cannot vouch for.
func (inv *invariant) expectAlive() {
	GinkgoHelper()
	inv.mu.Lock()
	defer inv.mu.Unlock()
	Expect(inv.endedEarly).To(BeFalse(), "the Node watch ended before the test did")
	Expect(inv.events).To(BeNumerically(">", 0), "the Node watch saw nothing")
}

func count(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// nodeCycles lists the NodeCycles of a namespace.
func nodeCycles(ns string) []v1alpha1.NodeCycle {
	GinkgoHelper()
	var list v1alpha1.NodeCycleList
	Expect(env.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

func createNamespace(name string) {
	GinkgoHelper()
	Expect(env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
}

func envtestAdmin() envtest.User {
	return envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}
}
