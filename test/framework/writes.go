package framework

import (
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// Writes counts the write requests (anything but GET) a client sends,
// by verb and resource ("PATCH nodes/status"; "PATCH nodes (409)" for one
// refused as a conflict).
type Writes struct {
	mu     sync.Mutex
	counts map[string]int
}

// Wrap returns a copy of cfg whose requests are counted.
func (w *Writes) Wrap(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			if r.Method != http.MethodGet {
				key := r.Method + " " + resourceOf(r.URL.Path)
				if err == nil && resp.StatusCode == http.StatusConflict {
					key += " (409)"
				}
				w.add(key)
			}
			return resp, err
		})
	})
	return c
}

func (w *Writes) add(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts = map[string]int{}
	}
	w.counts[key]++
}

// Reset forgets what was counted so far.
func (w *Writes) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts = nil
}

// Add adds what o counted.
func (w *Writes) Add(o *Writes) {
	o.mu.Lock()
	counts := maps.Clone(o.counts)
	o.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts = map[string]int{}
	}
	for k, n := range counts {
		w.counts[k] += n
	}
}

// Total is the number of writes counted.
func (w *Writes) Total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.counts {
		n += c
	}
	return n
}

// Per is the count of each kind of write divided by n, most frequent first.
func (w *Writes) Per(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := make([]string, 0, len(w.counts))
	for k := range w.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if w.counts[keys[i]] != w.counts[keys[j]] {
			return w.counts[keys[i]] > w.counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.1f", k, float64(w.counts[k])/float64(n))
	}
	return strings.Join(parts, ", ")
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// resourceOf names the resource of an API path: /api/v1/nodes/x/status is
// nodes/status, /apis/g/v/namespaces/ns/pods/p/eviction is pods/eviction.
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return path
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) > 2 {
		parts = parts[2:]
	}
	switch len(parts) {
	case 0:
		return path
	case 1, 2:
		return parts[0]
	default:
		return parts[0] + "/" + parts[2]
	}
}

// PerKind is the count of each kind of write divided by n, by kind.
func (w *Writes) PerKind(n int) map[string]float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	per := make(map[string]float64, len(w.counts))
	for k, c := range w.counts {
		per[k] = float64(c) / float64(n)
	}
	return per
}

// MetricUnit turns a kind of write ("PATCH nodes/status (409)") into a
// benchmark unit without spaces ("PATCH-nodes/status-409/cycle").
func MetricUnit(prefix, kind string) string {
	r := strings.NewReplacer(" (", "-", ")", "", " ", "-")
	return prefix + r.Replace(kind) + "/cycle"
}
