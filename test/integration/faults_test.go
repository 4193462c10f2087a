package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/internal/nodes"
	"github.com/nodecycle/nodecycle/test/framework"
)

// faultProxy stands in front of the API server and answers a share of the
// requests (twice that of the writes) itself with 500, 429 or (for writes) 409; answers a share of the
// writes with 500 or, after a delay, 504 once the API server has made them
// (the write happened, the client is told it failed); answers a share of
// the reads with 504 after a delay (a timeout); and cuts watches after a
// random time. It forwards the rest with the admin's credentials.
type faultProxy struct {
	server                        *httptest.Server
	share                         float64
	failed, throttled, conflicted atomic.Int32
	appliedThenFailed, timedOut   atomic.Int32
	cut, passed                   atomic.Int32
}

func startFaultProxy(share float64) *faultProxy {
	GinkgoHelper()
	target, err := url.Parse(env.Config.Host)
	Expect(err).NotTo(HaveOccurred())
	transport, err := rest.TransportFor(env.Config)
	Expect(err).NotTo(HaveOccurred())
	forward := httputil.NewSingleHostReverseProxy(target)
	forward.Transport = transport
	forward.FlushInterval = -1 // watches stream
	p := &faultProxy{share: share}
	var mu sync.Mutex
	rnd := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // a test's fault schedule
	roll := func() float64 { mu.Lock(); defer mu.Unlock(); return rnd.Float64() }
	p.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "true" {
			ctx, cancel := context.WithTimeout(r.Context(), time.Duration(1+roll()*4*float64(time.Second)))
			defer cancel()
			// A cut watch ends the handler with a panic (http.ErrAbortHandler).
			defer func() {
				if ctx.Err() != nil {
					p.cut.Add(1)
				}
			}()
			forward.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		write := r.Method != http.MethodGet
		share := p.share
		if write {
			share *= 2 // fewer, and five ways to fail
		}
		switch x := roll(); {
		case x < share/5:
			p.failed.Add(1)
			status(w, http.StatusInternalServerError, "InternalError")
		case x < 2*share/5:
			p.throttled.Add(1)
			w.Header().Set("Retry-After", "0")
			status(w, http.StatusTooManyRequests, "TooManyRequests")
		case x < 3*share/5 && write:
			p.conflicted.Add(1)
			status(w, http.StatusConflict, "Conflict")
		case x < 4*share/5 && write:
			// The API server makes the write; the client hears 500.
			p.appliedThenFailed.Add(1)
			forward.ServeHTTP(httptest.NewRecorder(), r)
			status(w, http.StatusInternalServerError, "InternalError")
		case x < share:
			// A timeout: after a while, 504; a write was made all the same.
			p.timedOut.Add(1)
			if write {
				forward.ServeHTTP(httptest.NewRecorder(), r)
			}
			time.Sleep(time.Duration(roll() * float64(time.Second)))
			status(w, http.StatusGatewayTimeout, "Timeout")
		default:
			p.passed.Add(1)
			forward.ServeHTTP(w, r)
		}
	}))
	DeferCleanup(p.server.Close)
	return p
}

func status(w http.ResponseWriter, code int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected by the test's fault proxy","reason":%q,"code":%d}`, reason, code)
}

// config is a client configuration that goes through the proxy.
func (p *faultProxy) config() *rest.Config {
	return &rest.Config{Host: p.server.URL, QPS: 200, Burst: 400}
}

func (p *faultProxy) String() string {
	return fmt.Sprintf("%d passed, %d answered 500, %d answered 429, %d writes answered 409, %d writes made and answered 500, %d timed out (504; writes made), %d watches cut",
		p.passed.Load(), p.failed.Load(), p.throttled.Load(), p.conflicted.Load(), p.appliedThenFailed.Load(), p.timedOut.Load(), p.cut.Load())
}

// API faults: the manager and the agents talk to the API server through a
// proxy that fails a share of their requests and cuts their watches; the
// roll still finishes, one node at a time, each rebooted once, nothing
// left cordoned.
var _ = Describe("API faults", func() {
	It("finish a rolling reboot with every promise kept when a quarter of the requests fail, writes are made but reported failed, requests time out and watches are cut", func() {
		proxy := startFaultProxy(0.25)
		c := newCluster("faults", 4)
		cs, err := kubernetes.NewForConfig(proxy.config())
		Expect(err).NotTo(HaveOccurred())
		for _, a := range c.agents {
			a.stop()
			a.client = cs
		}
		for _, a := range c.agents {
			a.start()
		}
		c.deploy("web", 4, 1)
		var stop func() error
		Eventually(func() (err error) {
			stop, _, err = framework.StartManager(proxy.config(), GinkgoWriter, c.managerFlags("--retry-backoff=1s", "--max-retry-backoff=2s")...)
			return err
		}).Should(Succeed(), "the manager starts, whatever the first requests meet")
		defer func() { Expect(stop()).To(Succeed()) }()
		for _, a := range c.agents {
			a.requireReboot()
		}
		Eventually(func(g Gomega) {
			for node := range c.agents {
				succeeded := 0
				for _, nc := range nodeCycles(c.name) {
					if nc.Spec.NodeName == node && nc.Status.Phase == v1alpha1.PhaseSucceeded {
						succeeded++
					}
				}
				g.Expect(succeeded).To(Equal(1), node)
			}
		}, 4*time.Minute).Should(Succeed())
		Eventually(func(g Gomega) {
			for node := range c.agents {
				n := c.getNode(node)
				g.Expect(n.Spec.Unschedulable).To(BeFalse(), node)
				g.Expect(nodes.IsConditionTrue(n, v1alpha1.ConditionMaintenanceInProgress)).To(BeFalse(), node)
			}
		}).Should(Succeed())
		mostRebooting, started := c.expectOneAtATime()
		maxCordoned, _ := c.inv.snapshot()
		fmt.Fprintf(GinkgoWriter, "API faults: %s; at most %d node(s) cordoned and %d rebooting at once\n", proxy, maxCordoned, mostRebooting)
		AddReportEntry("API faults", proxy.String())
		Expect(maxCordoned).To(Equal(1), "one node cordoned at a time, and some were")
		Expect(mostRebooting).To(Equal(1), "one node rebooting at a time, and some did")
		Expect(started).To(Equal(len(c.agents)))
		history := func(node string) string {
			out := ""
			for _, nc := range nodeCycles(c.name) {
				if nc.Spec.NodeName == node {
					out += fmt.Sprintf("\n%s %s %s boot %s -> %s request %s", nc.Name, nc.Status.Phase, nc.Status.Reason, nc.Status.BootIDBefore, nc.Status.BootIDAfter, nc.Status.RebootRequestID)
				}
			}
			return out
		}
		for node, a := range c.agents {
			Expect(a.reboots()).To(Equal(1), "%s:%s", node, history(node))
			Expect(c.kubelet.Reboots(node)).To(Equal(1), node)
		}
		Expect(proxy.failed.Load()+proxy.throttled.Load()+proxy.conflicted.Load()).To(BeNumerically(">", 20), "faults were injected")
		Expect(proxy.cut.Load()).To(BeNumerically(">", 5), "watches were cut")
		Expect(proxy.appliedThenFailed.Load()).To(BeNumerically(">", 0), "writes were made and reported failed")
		Expect(proxy.timedOut.Load()).To(BeNumerically(">", 0), "requests timed out")
		Expect(proxy.passed.Load()).To(BeNumerically(">", 3*(proxy.failed.Load()+proxy.throttled.Load())), "three quarters of the requests went through")
	})
})
