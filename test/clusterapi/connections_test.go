package clusterapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/internal/cluster"
	"github.com/nodecycle/nodecycle/internal/nodes"
)

var _ = Describe("Workload cluster connections", func() {
	It("map the builtin kinds as the API server's discovery does", func() {
		dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
		Expect(err).NotTo(HaveOccurred())
		_, lists, err := dc.ServerGroupsAndResources()
		Expect(err).NotTo(HaveOccurred())
		m, checked := cluster.BuiltinRESTMapper(), 0
		for _, list := range lists {
			gv, err := schema.ParseGroupVersion(list.GroupVersion)
			Expect(err).NotTo(HaveOccurred())
			for _, r := range list.APIResources {
				if strings.Contains(r.Name, "/") {
					continue // a subresource
				}
				mapping, err := m.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: r.Kind}, gv.Version)
				if !cluster.IsBuiltin(gv) {
					Expect(meta.IsNoMatchError(err)).To(BeTrue(), "%s %s is not builtin: %v", gv, r.Kind, err)
					continue
				}
				Expect(err).NotTo(HaveOccurred(), "%s %s", gv, r.Kind)
				Expect(mapping.Resource).To(Equal(gv.WithResource(r.Name)), "%s %s", gv, r.Kind)
				Expect(mapping.Scope.Name() == meta.RESTScopeNameNamespace).To(Equal(r.Namespaced), "%s %s namespaced", gv, r.Kind)
				checked++
			}
		}
		Expect(checked).To(BeNumerically(">", 30))
	})

	It("connect without discovery, read, watch and apply, drop a cluster whose probes fail and connect again", func(ctx SpecContext) {
		const ns, userAgent = "connections", "nodecycle-connections-test"
		// The workload cluster is the management API server behind a
		// proxy that records each request and can fail them all.
		var mu sync.Mutex
		var paths []string
		var failing atomic.Bool
		target, err := url.Parse(env.Config.Host)
		Expect(err).NotTo(HaveOccurred())
		proxy := httputil.NewSingleHostReverseProxy(target)
		proxy.Transport, err = rest.TransportFor(env.Config)
		Expect(err).NotTo(HaveOccurred())
		server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if failing.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			if r.UserAgent() == userAgent { // Cluster API's own ClusterCache connects too
				mu.Lock()
				paths = append(paths, r.URL.Path)
				mu.Unlock()
			}
			proxy.ServeHTTP(w, r)
		}))
		DeferCleanup(server.Close)
		cl, err := capi.CreateCluster(ctx, ns, "lean", &rest.Config{Host: server.URL})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) error { return capi.DeleteCluster(ctx, ns, "lean") })
		key := client.ObjectKeyFromObject(cl)

		conns := cluster.NewConnections(k8s, k8s, controllers.Scheme(), cluster.ConnectionDefaults(cluster.ConnectionOptions{
			UserAgent: userAgent, ProbeInterval: time.Millisecond, RetryInterval: time.Millisecond, FailureThreshold: 2,
		}))
		DeferCleanup(conns.Close)
		// A source as the controllers have: each connect and disconnect
		// queues the Cluster.
		queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
		DeferCleanup(queue.ShutDown)
		Expect(conns.Source(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(o)}}
		}).Start(ctx, queue)).To(Succeed())
		notified := func() bool {
			GinkgoHelper()
			if queue.Len() == 0 {
				return false
			}
			req, _ := queue.Get()
			queue.Done(req)
			queue.Forget(req)
			Expect(req.NamespacedName).To(Equal(key))
			return true
		}
		reconcileOnce := func() {
			GinkgoHelper()
			Expect(conns.Reconcile(ctx, ctrl.Request{NamespacedName: key})).Error().NotTo(HaveOccurred())
		}

		By("a Cluster that did not ask is not connected to")
		reconcileOnce()
		_, _, _, err = conns.Clients(key)
		Expect(err).To(MatchError(cluster.ErrNotConnected))
		Expect(conns.Failing(key)).To(BeFalse())

		By("once it asks, it is connected to, and the controllers hear of it")
		Expect(nodes.SetAnnotations(ctx, k8s, cl, map[string]*string{v1alpha1.AnnotationConnect: ptr.To("true")})).To(Succeed())
		reconcileOnce()
		cached, live, cfg, err := conns.Clients(key)
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.DisableCompression).To(BeTrue(), "no gzip reader per watch")
		Eventually(notified).Should(BeTrue())

		By("nodecycle's kinds are read and applied")
		var nodeList corev1.NodeList
		Expect(cached.List(ctx, &nodeList, client.MatchingFields{nodes.IndexCordonedBy: "yes"})).To(Succeed())
		var pods corev1.PodList
		Expect(live.List(ctx, &pods, client.InNamespace(ns))).To(Succeed())
		for _, obj := range []string{
			`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"lean-agent","namespace":"` + ns + `"}}`,
			`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"lean-agent"},"rules":[]}`,
		} {
			u := &unstructured.Unstructured{}
			Expect(u.UnmarshalJSON([]byte(obj))).To(Succeed())
			Expect(cached.Patch(ctx, u, client.Apply, client.FieldOwner("nodecycle-test"), client.ForceOwnership)).To(Succeed()) //nolint:staticcheck // unstructured objects
		}
		DeferCleanup(func(ctx SpecContext) error {
			return client.IgnoreNotFound(k8s.Delete(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "lean-agent"}}))
		})

		By("without asking the cluster's discovery")
		mu.Lock()
		seen := append([]string(nil), paths...)
		mu.Unlock()
		Expect(seen).To(ContainElement("/api/v1/nodes"))
		for _, p := range seen {
			Expect(isDiscovery(p)).To(BeFalse(), "discovery request %s (all: %v)", p, seen)
		}

		By("two failed probes drop the connection and say so")
		failing.Store(true)
		reconcileOnce()
		_, _, _, err = conns.Clients(key)
		Expect(err).NotTo(HaveOccurred(), "one failed probe keeps the connection")
		reconcileOnce()
		_, _, _, err = conns.Clients(key)
		Expect(err).To(MatchError(cluster.ErrNotConnected))
		Expect(conns.Failing(key)).To(BeTrue())
		Eventually(notified).Should(BeTrue())

		By("a failed connection is tried again, and made once the cluster answers")
		reconcileOnce()
		Expect(conns.Failing(key)).To(BeTrue())
		failing.Store(false)
		Eventually(func() error {
			if _, reconcileErr := conns.Reconcile(ctx, ctrl.Request{NamespacedName: key}); reconcileErr != nil {
				return reconcileErr
			}
			_, _, _, clientsErr := conns.Clients(key)
			return clientsErr
		}).Should(Succeed())
		Expect(conns.Failing(key)).To(BeFalse())
		Eventually(notified).Should(BeTrue())
	})
})

// isDiscovery says whether a request path reads API discovery: /api,
// /apis, /api/v1 or /apis/<group>/<version>.
func isDiscovery(path string) bool {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch parts[0] {
	case "api":
		return len(parts) <= 2
	case "apis":
		return len(parts) <= 3
	}
	return strings.HasPrefix(path, "/openapi")
}
