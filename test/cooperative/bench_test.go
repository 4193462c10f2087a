package cooperative

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
	"github.com/nodecycle/nodecycle/test/framework"
)

// drainResources are the resources a drain step reads and writes.
var drainResources = []string{"pods", "pods/eviction", "poddisruptionbudgets", "evictionrequests", "evictions"}

// requestCounter counts the manager's requests to the drain's resources
// while on is set.
type requestCounter struct {
	mu     sync.Mutex
	on     bool
	counts map[string]int
	// first is when the first eviction or EvictionRequest was asked for.
	first time.Time
}

func (c *requestCounter) wrap(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			c.add(r)
			return rt.RoundTrip(r)
		})
	})
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (c *requestCounter) add(r *http.Request) {
	if r.URL.Query().Get("watch") == "true" {
		return
	}
	res := resourceOf(r.URL.Path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		c.counts[r.Method+" "+res]++
		if r.Method == http.MethodPost && (res == "pods/eviction" || res == "evictionrequests") && c.first.IsZero() {
			c.first = time.Now()
		}
	}
}

// resourceOf is the resource (and subresource) of an API path.
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := 0; i < len(parts); i++ {
		if parts[i] == "namespaces" && i+2 < len(parts) {
			parts = append(parts[:i], parts[i+2:]...)
			break
		}
	}
	// api/v1/<res>[/name[/sub]] or apis/<group>/<version>/<res>[/name[/sub]]
	start := 2
	if parts[0] == "apis" {
		start = 3
	}
	if len(parts) <= start {
		return path
	}
	res := parts[start]
	if len(parts) > start+2 {
		res += "/" + parts[start+2]
	}
	return res
}

func (c *requestCounter) set(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = on
	if on {
		c.counts, c.first = map[string]int{}, time.Time{}
	}
}

// drainRequests is the number of requests to the drain's resources.
func (c *requestCounter) drainRequests() (total, writes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range c.counts {
		method, res, _ := strings.Cut(k, " ")
		for _, d := range drainResources {
			if res == d {
				total += n
				if method != http.MethodGet {
					writes += n
				}
			}
		}
	}
	return total, writes
}

// drained says the NodeCycle is past its drain.
func drained(p v1alpha1.Phase) bool {
	switch p {
	case "", v1alpha1.PhasePending, v1alpha1.PhaseCordoning, v1alpha1.PhaseDraining:
		return false
	}
	return true
}

// BenchmarkDrainPaths drains a node of 10 pods without responders, through
// the Eviction API (drain.evictionRequests Never) and through
// EvictionRequests, on the same cluster: the drain's time (the first
// eviction or request asked for, to the NodeCycle past Draining) and the manager's API requests to pods, evictions, PDBs,
// EvictionRequests and Evictions per pod. The cluster's own work (its
// imperative evictor calling the Eviction API) is not the manager's and is
// not counted.
func BenchmarkDrainPaths(b *testing.B) {
	const pods = 10
	for _, path := range []struct{ name, mode string }{{"EvictionAPI", "never"}, {"EvictionRequests", "auto"}} {
		b.Run(path.name, func(b *testing.B) {
			var drain time.Duration
			var requests, writes int
			for i := 0; b.Loop(); i++ {
				c := newTestCluster(b, env, fmt.Sprintf("bench-%s-%d", strings.ToLower(path.name), i))
				for p := range pods {
					c.pod(fmt.Sprintf("web-%d", p), map[string]string{"app": "web"}, nil)
				}
				counter := &requestCounter{}
				stop, _, err := framework.StartManager(counter.wrap(env.Config), os.Stderr, c.flags("--drain-timeout=2m", "--drain-eviction-requests="+path.mode)...)
				if err != nil {
					b.Fatal(err)
				}
				counter.set(true)
				c.requireReboot()
				for deadline := time.Now().Add(time.Minute); !drained(c.phase()); time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						b.Fatalf("no drain within a minute: %s %s", c.phase(), c.message())
					}
				}
				counter.set(false)
				drain += time.Since(counter.first)
				total, w := counter.drainRequests()
				requests, writes = requests+total, writes+w
				if err := stop(); err != nil {
					b.Fatal(err)
				}
				if !c.cordoned() && c.phase() == v1alpha1.PhaseFailed {
					b.Fatalf("the drain failed: %s", c.message())
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(drain.Milliseconds())/n, "drain-ms")
			b.ReportMetric(float64(requests)/n/pods, "requests/pod")
			b.ReportMetric(float64(writes)/n/pods, "writes/pod")
			b.ReportMetric(0, "ns/op")
		})
	}
}
